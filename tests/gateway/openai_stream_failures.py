"""The official `openai` Python package, unmodified, reading a stream from
Warden's gateway whose upstream fails part-way (stalls, breaks off, sends
an error event): the client must see an error, never a normal end of a
cut-off answer.

Usage: openai_stream_failures.py BASE_URL API_KEY MODEL

Streams one completion and prints, as one JSON object on stdout for the
Rust test (tests/e2e/gateway_limits.rs): the content received, the number
of chunks, whether the stream ended normally, and the exception raised
(its class names and message), if any.
"""

import json
import sys

import openai
from openai import OpenAI


def main() -> None:
    base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    content = []
    chunks = 0
    error = None
    completed = False
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Tell me everything."}],
            stream=True,
        )
        for chunk in stream:
            chunks += 1
            for choice in chunk.choices:
                if choice.delta.content:
                    content.append(choice.delta.content)
        completed = True
    except openai.OpenAIError as e:
        error = {
            "classes": [c.__name__ for c in type(e).__mro__],
            "message": getattr(e, "message", str(e)),
        }
    print(
        json.dumps(
            {
                "content": "".join(content),
                "chunks": chunks,
                "completed": completed,
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    main()
