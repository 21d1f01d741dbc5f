"""Drives POST /v1/mcp with the official MCP Python SDK, unchanged: its handshake
`ClientSession` (initialize, then the 2025 revision it negotiates) and its default `Client`
(which probes `server/discover` and speaks 2026-07-28). For each, it lists the tools and calls
the three, and prints one JSON line per client for the Rust test (tests/api/mcp.rs) to check.

    python mcp_tools.py <base url> <api key> <workspace id>
"""

import asyncio
import json
import sys

import httpx2
from mcp.client.client import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def exercise(session, workspace_id):
    listed = await session.list_tools()
    calls = {
        "get_billing_status": {"workspace_id": workspace_id},
        "get_usage": {"category": "actions", "group_by": "day", "workspace_id": workspace_id},
        "check_budget": {"amount_cents": 250, "workspace_id": workspace_id},
    }
    results = {}
    for name, arguments in calls.items():
        result = await session.call_tool(name, arguments)
        results[name] = {"is_error": bool(result.is_error), "structured": result.structured_content}
    bad = await session.call_tool("check_budget", {"amount_cents": 1, "workspace_id": "ws_nobody"})
    return {
        "tools": [tool.name for tool in listed.tools],
        "results": results,
        "not_found": {"is_error": bool(bad.is_error), "structured": bad.structured_content},
    }


async def main(url, key, workspace_id):
    headers = {"Authorization": f"Bearer {key}"}
    out = {}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                initialized = await session.initialize()
                out["handshake"] = {
                    "protocol_version": initialized.protocol_version,
                    "server": initialized.server_info.name,
                    **await exercise(session, workspace_id),
                }
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            out["default"] = {
                "protocol_version": client.protocol_version,
                **await exercise(client.session, workspace_id),
            }
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
