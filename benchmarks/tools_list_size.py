"""How much a client reads from `tools/list`: bytes of the compact JSON as sent, per scope and toolset.

    python benchmarks/tools_list_size.py

Tokens are estimated as bytes / 4. "name + description + input schema" is the part most clients put in
a model's context; output schemas and annotations are read by the client itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile

from mcp import Client

from nt_mcp.config import load_settings
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import TOOLSETS, all_tools, toolset_names
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services

CALLERS = [
    ("every scope", "read backtest trade", ""),
    ("read", "read", ""),
    ("read backtest", "read backtest", ""),
    ("every scope, NT_TOOLSETS=status,market,backtest", "read backtest trade", "status,market,backtest"),
]


def _compact(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


async def measure(services: Services, scopes: str, toolsets: str) -> tuple[int, int, int, str, int]:
    principal = Principal("benchmark", frozenset(scopes.split()))
    server = NtMCPServer(Guard(services, principal), all_tools(toolset_names(toolsets)))
    async with Client(server, mode="legacy") as client:
        tools = (await client.list_tools()).tools
    dumped = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    model = [{"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in tools]
    largest = max(dumped, key=_compact)
    return len(tools), _compact({"tools": dumped}), _compact(model), largest["name"], _compact(largest)


async def main() -> None:
    os.environ.setdefault("NT_DATA_HOME", tempfile.mkdtemp())
    services = await Services.start(load_settings())
    try:
        print(f"toolsets: {', '.join(TOOLSETS)}")
        for label, scopes, toolsets in CALLERS:
            n, full, model, name, size = await measure(services, scopes, toolsets)
            print(
                f"{label:50s} {n:3d} tools  tools/list {full:8,d} bytes (~{full // 4:,} tokens)  "
                f"name+description+inputSchema {model:7,d} bytes (~{model // 4:,} tokens)  largest: {name} {size:,}"
            )
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main())
