"""Audit rows of read-only calls are batched off the reply path, yet none is ever missing: a caller
reading its own trail sees every call, and server shutdown (stdio EOF) writes what was queued.
Calls that move money keep their row written before they answer."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from mcp import Client, StdioServerParameters
from pydantic import BaseModel, Field

from nt_mcp.infra.schema import audit_log
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.tools.registry import Principal, ToolContext, tool
from nt_mcp.tools.services import Services
from nt_mcp.tools.status import TOOLS as STATUS_TOOLS
from tests.cli import server_env
from tests.conftest import make_settings


class Echo(BaseModel):
    value: int


@tool(output=Echo, scope="trade", title="Moves money", destructive=True)
async def moves_money(ctx: ToolContext, value: Annotated[int, Field(ge=0, le=10)]) -> Echo:
    """Return value."""
    return Echo(value=value)


async def _stored_tools(services: Services) -> list[str]:
    """The audit rows in the database right now, read past the queue."""
    async with services.db.connect() as conn:
        rows = (await conn.execute(sa.select(audit_log.c.tool).order_by(audit_log.c.id))).scalars().all()
    return list(rows)


async def test_a_burst_of_read_only_calls_is_all_in_the_callers_trail(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, audit_flush_ms=2000, rate_limit_per_minute=10_000)
    services = await Services.start(settings)
    try:
        guard = Guard(services, Principal("burst", frozenset({"read", "trade"})))
        async with Client(NtMCPServer(guard, [*STATUS_TOOLS, moves_money])) as client:
            replies = await asyncio.gather(*(client.call_tool("ping", {"echo": str(i)}) for i in range(40)))
            assert not any(r.is_error for r in replies)
            queued = await _stored_tools(services)
            money = await client.call_tool("moves_money", {"value": 3})
            after_money = await _stored_tools(services)
            trail = await client.call_tool("get_audit_log", {"limit": 100, "tool_name": "ping"})
    finally:
        await services.close()
    assert len(queued) < 40  # the ping rows were not written on the reply path
    assert not money.is_error and "moves_money" in after_money  # written before the call answered
    entries = trail.structured_content["entries"]
    assert len(entries) == 40
    assert sorted(e["arguments"]["echo"] for e in entries) == sorted(str(i) for i in range(40))


async def test_stdio_server_writes_queued_rows_when_its_client_closes(tmp_path: Path) -> None:
    env = server_env(tmp_path / "d", NT_AUDIT_FLUSH_MS="5000", NT_RATE_LIMIT_PER_MINUTE="10000")
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        for i in range(25):
            assert not (await client.call_tool("ping", {"echo": str(i)})).is_error
    # the client closed stdin within the flush interval: the rows are written at shutdown, not lost
    async with Client(params, read_timeout_seconds=60) as client:
        trail = await client.call_tool("get_audit_log", {"limit": 100, "tool_name": "ping"})
    echoes = sorted(int(e["arguments"]["echo"]) for e in trail.structured_content["entries"])
    assert echoes == list(range(25))


_SERVE_AND_REPORT = """
import asyncio, sys
from nt_mcp.config import Settings
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services

async def main():
    services = await Services.start(Settings())
    build_server(services)
    await services.close()
    print("alembic" in sys.modules)

asyncio.run(main())
"""


def test_starting_on_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    env = server_env(tmp_path / "d")
    for expected in ("True", "False"):  # the first start migrates a new database; the second has nothing to do
        done = subprocess.run(
            [sys.executable, "-c", _SERVE_AND_REPORT],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == expected


def _rpc(process: subprocess.Popen[str], message: dict[str, object]) -> dict[str, object] | None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()
    if "id" not in message:
        return None
    answer: dict[str, object] = json.loads(process.stdout.readline())
    return answer


INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def _pings_then_sigterm(tmp_path: Path, env: dict[str, str], calls: int) -> int:
    """Serve over stdio, make ``calls`` pings, SIGTERM the server; its exit status."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _rpc(process, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INITIALIZE})
        _rpc(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(calls):
            params = {"name": "ping", "arguments": {"echo": str(i)}}
            answer = _rpc(process, {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": params})
            assert answer is not None and "result" in answer
        process.send_signal(signal.SIGTERM)  # within the 5 s flush interval: the rows are still queued
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


async def test_sigterm_writes_queued_rows_before_the_server_exits(tmp_path: Path) -> None:
    env = server_env(tmp_path / "d", NT_AUDIT_FLUSH_MS="5000", NT_RATE_LIMIT_PER_MINUTE="10000")
    assert await asyncio.to_thread(_pings_then_sigterm, tmp_path, env, 15) == 0
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        trail = await client.call_tool("get_audit_log", {"limit": 100, "tool_name": "ping"})
    echoes = sorted(int(e["arguments"]["echo"]) for e in trail.structured_content["entries"])
    assert echoes == list(range(15))
