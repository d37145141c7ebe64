"""The official `openai` Python package, unmodified, against Warden's
gateway: only its base URL and API key are changed.

Usage: openai_client.py BASE_URL API_KEY MODEL

Makes a plain chat completion, a streamed one, and a streamed one that
asks for usage, and prints what it got as one JSON object on stdout for
the Rust test (tests/e2e/gateway.rs) to check against Warden's records.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Say hello to the gateway test."}]

    plain = client.chat.completions.create(model=model, messages=messages)

    # A stream without include_usage: every chunk must have a choice, as
    # code written for OpenAI assumes.
    streamed = []
    for chunk in client.chat.completions.create(model=model, messages=messages, stream=True):
        delta = chunk.choices[0].delta
        if delta.content:
            streamed.append(delta.content)

    with_usage = []
    usage = None
    for chunk in client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                with_usage.append(choice.delta.content)

    models = [m.id for m in client.models.list()]

    print(
        json.dumps(
            {
                "plain": {
                    "content": plain.choices[0].message.content,
                    "model": plain.model,
                    "prompt_tokens": plain.usage.prompt_tokens,
                    "completion_tokens": plain.usage.completion_tokens,
                },
                "stream": {"content": "".join(streamed), "chunks": len(streamed)},
                "stream_usage": {
                    "content": "".join(with_usage),
                    "prompt_tokens": usage.prompt_tokens if usage else None,
                    "completion_tokens": usage.completion_tokens if usage else None,
                },
                "models": models,
            }
        )
    )


if __name__ == "__main__":
    main()
