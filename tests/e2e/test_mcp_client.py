"""End to end through the real `mcp` client: in memory, and against `nt-mcp serve` as a stdio subprocess."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters

from nt_mcp.config import Settings
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.cli import server_env
from tests.results import error_of

FOUNDATION_TOOLS = {"server_status", "ping", "get_audit_log"}


async def test_in_memory_client_lists_tools_and_reads_status(services: Services) -> None:
    async with Client(build_server(services)) as client:
        listed = await client.list_tools()
        names = {t.name for t in listed.tools}
        assert names >= FOUNDATION_TOOLS
        for listed_tool in listed.tools:
            assert listed_tool.description and listed_tool.output_schema is not None
            assert listed_tool.annotations is not None and listed_tool.annotations.title
        status = await client.call_tool("server_status", {})
    assert not status.is_error
    body = status.structured_content
    assert body["status"] == "ok" and body["mode"] == "paper"
    assert body["storage"]["backend"] == services.db.backend and body["storage"]["healthy"] is True
    assert body["principal"] == "local-operator" and "admin" not in body["scopes"]


async def test_stdio_subprocess_speaks_only_json_rpc_on_stdout(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    stdout_copy = tmp_path / "stdout.jsonl"
    # NT_LOG_LEVEL=DEBUG: plenty of log lines, all of which must go to stderr
    env = server_env(tmp_path / "data", NT_DATABASE_URL=pg_url, NT_REDIS_URL=redis_url, NT_LOG_LEVEL="DEBUG")
    command = f"{shlex.quote(sys.executable)} -m nt_mcp serve | tee {shlex.quote(str(stdout_copy))}"
    params = StdioServerParameters(command="/bin/sh", args=["-c", command], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        status = await client.call_tool("server_status", {})
        ping = await client.call_tool("ping", {"echo": "über"})
        bad = await client.call_tool("ping", {"echo": 42})
        missing = await client.call_tool("no_such_tool", {"x": 1})
    assert names >= FOUNDATION_TOOLS
    assert status.structured_content["storage"] == {
        "backend": "postgresql",
        "healthy": True,
        "latency_ms": status.structured_content["storage"]["latency_ms"],
        "detail": "ok",
    }
    assert status.structured_content["cache"] == {"backend": "redis", "healthy": True}
    assert status.structured_content["rate_limit_backend"] == "redis"
    assert ping.structured_content["echo"] == "über"
    assert bad.is_error and error_of(bad)["code"] == "VALIDATION_ERROR"
    assert error_of(missing)["code"] == "NOT_FOUND" and "no_such_tool" in error_of(missing)["message"]
    lines = stdout_copy.read_text().splitlines()
    assert len(lines) >= 4
    for line in lines:
        assert json.loads(line)["jsonrpc"] == "2.0"


async def test_zero_config_stdio_server_uses_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    env = server_env(tmp_path / "d")
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        status = await client.call_tool("server_status", {})
    assert status.structured_content["storage"]["backend"] == "sqlite"
    assert status.structured_content["cache"]["backend"] == "memory"
    assert (tmp_path / "d" / "nt-mcp.sqlite3").is_file()


def test_settings_type_is_what_the_cli_reads() -> None:
    assert Settings.model_config["env_prefix"] == "NT_"
