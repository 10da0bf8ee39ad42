"""nt-mcp under MCP clients nobody here wrote: the MCP Inspector CLI against `nt-mcp serve` (stdio), and the
MCP conformance suite's server scenarios against `nt-mcp serve --transport http` (NT_HTTP_AUTH=none on
127.0.0.1). Both run on Node 22 from .ci-node/, which ./scripts/test installs from
scripts/peer-clients (and then sets REQUIRE_PEER_CLIENTS=1, so a missing client fails instead of skipping).

MCP Inspector 2.12 exits 5 (its TOOL_ERROR) for every result with ``isError: true``, after printing it, and
answers a call to a tool that tools/list does not name itself (``tool_not_found``, also 5) without sending
it. What nt-mcp controls, and these tests check: errors reach the Inspector as valid results carrying our
stable code (with structured content on errors, Inspector rejected them with exit 1 and a schema message
instead), and ``tools/list --strict`` finds no schema portability problem.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli import server_env
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / ".ci-node" / "node_modules" / ".bin"
EXPECTED_FAILURES = Path(__file__).with_name("conformance-expected-failures.yml")
INSPECTOR_TOOL_ERROR = 5


def _node_tool(name: str) -> Path:
    path = NODE_BIN / name
    if not path.exists():
        message = f"{path} is missing: ./scripts/test installs the peer MCP clients (scripts/peer-clients)"
        if os.environ.get("REQUIRE_PEER_CLIENTS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _node_env(home: Path) -> dict[str, str]:
    """Node 22 from .ci-node first on PATH; HOME in the test's directory (the Inspector keeps state there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NT_")}
    return env | {"PATH": f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}", "HOME": str(home)}


def inspector(tmp_path: Path, *args: str, **server_settings: str) -> subprocess.CompletedProcess[str]:
    """``inspector --cli -e ... <python -m nt_mcp serve> --format json -q ARGS`` against a fresh data home."""
    settings = {"NT_DATA_HOME": str(tmp_path / "data"), "NT_LOG_LEVEL": "WARNING"} | server_settings
    env_flags = [flag for key, value in settings.items() for flag in ("-e", f"{key}={value}")]
    command = [str(_node_tool("inspector")), "--cli", *env_flags, sys.executable, "-m", "nt_mcp", "serve"]
    return subprocess.run(
        [*command, "--format", "json", "-q", *args],
        env=_node_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def _result(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    body = json.loads(run.stdout)
    return dict(body.get("result", body))


def _error_code(result: dict[str, Any]) -> str:
    assert result["isError"] is True and "structuredContent" not in result
    envelope = json.loads(result["content"][0]["text"])["error"]
    assert result["_meta"]["nt-mcp/error"] == envelope
    return str(envelope["code"])


# -- MCP Inspector CLI --------------------------------------------------------------------------------------


def test_inspector_calls_a_tool(tmp_path: Path) -> None:
    run = inspector(tmp_path, "--method", "tools/call", "--tool-name", "ping", "--tool-arg", "echo=über")
    assert run.returncode == 0, run.stderr
    result = _result(run)
    assert result.get("isError") in (None, False)
    assert result["structuredContent"]["echo"] == "über" and result["structuredContent"]["pong"] is True


@pytest.mark.parametrize(
    ("tool", "arguments", "argument"),
    [
        ("run_backtest", {"strategy": "no_such_strategy", "symbol": "SPY"}, "strategy"),  # our own check
        ("get_bars", {"symbol": "SPY", "limit": 0}, "limit"),  # the input schema's bound
    ],
)
def test_inspector_reads_a_validation_error(
    tmp_path: Path, tool: str, arguments: dict[str, Any], argument: str
) -> None:
    run = inspector(tmp_path, "--method", "tools/call", "--tool-name", tool, "--tool-args-json", json.dumps(arguments))
    assert run.returncode == INSPECTOR_TOOL_ERROR, run.stderr  # a valid isError result, not a schema failure (1)
    result = _result(run)
    assert _error_code(result) == "VALIDATION_ERROR"
    assert result["_meta"]["nt-mcp/error"]["context"] == {"argument": argument}
    assert json.loads(run.stderr)["error"]["code"] == "tool_is_error"


def test_inspector_refuses_an_unknown_tool_before_calling(tmp_path: Path) -> None:
    run = inspector(tmp_path, "--method", "tools/call", "--tool-name", "no_such_tool")
    assert run.returncode == INSPECTOR_TOOL_ERROR
    assert json.loads(run.stderr)["error"]["code"] == "tool_not_found"  # the Inspector's own check of tools/list


def test_inspector_strict_tools_list_reports_nothing(tmp_path: Path) -> None:
    run = inspector(tmp_path, "--method", "tools/list", "--strict")
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == ""  # --strict prints each portability finding on stderr
    names = {tool["name"] for tool in _result(run)["tools"]}
    assert {"run_backtest", "place_order", "server_status"} <= names


def test_inspector_sees_only_what_the_stdio_scopes_allow(tmp_path: Path) -> None:
    run = inspector(tmp_path, "--method", "tools/list", NT_STDIO_SCOPES="read")
    assert run.returncode == 0, run.stderr
    names = {tool["name"] for tool in _result(run)["tools"]}
    assert "get_positions" in names and not names & {"place_order", "execute_strategy", "run_backtest"}


# -- MCP conformance suite --------------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """`nt-mcp serve --transport http` without tokens on 127.0.0.1; its /mcp URL."""
    port = free_port()
    env = server_env(tmp_path / "data", NT_HTTP_AUTH="none", NT_LOG_LEVEL="WARNING")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve", "--transport", "http", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert server.returncode == 0
    problems = [line for line in (tmp_path / "server.log").read_text().splitlines() if '"level": "ERROR"' in line]
    assert problems == []


def test_conformance_server_scenarios(tmp_path: Path, http_server: str) -> None:
    run = subprocess.run(
        [
            str(_node_tool("conformance")),
            "server",
            "--url",
            http_server,
            "--suite",
            "all",
            "--expected-failures",
            str(EXPECTED_FAILURES),
            "-o",
            str(tmp_path / "results"),
        ],
        env=_node_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    summary = run.stdout[run.stdout.find("=== SUMMARY ===") :]
    assert run.returncode == 0, summary + run.stderr  # every failure is an expected one, and none passes now
    passed = re.findall(r"✓ ([a-z0-9-]+):", summary)
    assert {
        "server-initialize",
        "logging-set-level",
        "ping",
        "completion-complete",
        "tools-list",
        "resources-list",
        "prompts-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    } <= set(passed)


def test_the_readme_lists_every_expected_conformance_failure() -> None:
    readme = (ROOT / "README.md").read_text()
    scenarios = re.findall(r"^  - ([a-z0-9-]+)", EXPECTED_FAILURES.read_text(), flags=re.MULTILINE)
    assert len(scenarios) == 21
    missing = [name for name in scenarios if f"`{name}`" not in readme]
    assert missing == []
