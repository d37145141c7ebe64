"""Drives Warden's MCP server with the official MCP Python SDK (PyPI `mcp`),
as a coding agent would: connect over streamable HTTP with a bearer token,
list the tools, claim a task stage, report an event, heartbeat, complete it,
and try a call Warden refuses. Prints what it saw as one JSON object.

usage: client.py <mcp-url> <token> <token-name>
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def result(r):
    return {"is_error": r.is_error, "structured": r.structured_content}


async def main(url: str, token: str, name: str) -> None:
    out = {}
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                out["server"] = init.server_info.name if init.server_info else None
                tools = await session.list_tools()
                out["tools"] = sorted(t.name for t in tools.tools)
                out["claim_schema"] = next(
                    t.input_schema for t in tools.tools if t.name == "claim_task_v1"
                )
                out["complete_schema"] = next(
                    t.input_schema for t in tools.tools if t.name == "complete_stage_v1"
                )
                claim = await session.call_tool(
                    "claim_task_v1", {"worker_id": "py-mcp", "wait_ms": 2000}
                )
                out["claim"] = result(claim)
                c = claim.structured_content["claims"][0]
                task, lease = c["task_id"], c["token"]
                out["report"] = result(
                    await session.call_tool(
                        "report_event_v1",
                        {"task_id": task, "type": "log", "data": {"message": "from mcp"}},
                    )
                )
                out["heartbeat"] = result(
                    await session.call_tool("heartbeat_v1", {"task_id": task, "token": lease})
                )
                out["stale"] = result(
                    await session.call_tool(
                        "fail_stage_v1", {"task_id": task, "token": lease + 1000, "error": "x"}
                    )
                )
                out["unknown_field"] = result(
                    await session.call_tool(
                        "complete_stage_v1", {"task_id": task, "token": lease, "bogus": 1}
                    )
                )
                out["complete"] = result(
                    await session.call_tool(
                        "complete_stage_v1",
                        {"task_id": task, "token": lease, "output": {"done": True}},
                    )
                )
    # A thread with a human, as the token's agent: post, retry, read.
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                created = await session.call_tool(
                    "thread_create_v1",
                    {
                        "title": "review the fix",
                        "participants": [
                            {"name": name, "kind": "agent", "role": "executor"},
                            {"name": "alice", "kind": "human", "role": "reviewer"},
                        ],
                    },
                )
                out["thread_create"] = result(created)
                thread = created.structured_content["thread"]["id"]
                post = {
                    "thread_id": thread,
                    "schema_version": 1,
                    "kind": "finding",
                    "body": {"text": "the test is flaky"},
                    "idempotency_key": "k-1",
                }
                out["thread_post"] = result(await session.call_tool("thread_post_v1", post))
                out["thread_retry"] = result(await session.call_tool("thread_post_v1", post))
                out["thread_bad_version"] = result(
                    await session.call_tool("thread_post_v1", {**post, "schema_version": 9})
                )
                out["thread_read"] = result(
                    await session.call_tool(
                        "thread_read_v1", {"thread_id": thread, "after": 0, "wait": "5s"}
                    )
                )
                out["thread_list"] = result(await session.call_tool("thread_list_v1", {}))
                out["thread_status"] = result(
                    await session.call_tool("thread_status_v1", {"thread_id": thread})
                )
    # The same token naming another workspace is refused.
    other = create_mcp_http_client(
        headers={"Authorization": f"Bearer {token}", "x-warden-workspace": "other"}
    )
    async with other:
        async with streamable_http_client(url, http_client=other) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                out["other_workspace"] = result(
                    await session.call_tool("claim_task_v1", {"worker_id": "py-mcp"})
                )
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
