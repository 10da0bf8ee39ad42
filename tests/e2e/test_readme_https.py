"""The README's HTTPS commands work as written in a fresh shell: the block runs in bash, from a directory
holding only the checkout's virtualenv, with no virtualenv on PATH and no NT_ setting of the developer's;
then a real MCP client talks to the server it started, over TLS, with the token it minted."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client

from tests.http_support import mcp_transport
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def https_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Running over HTTPS") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def fresh_shell_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NT_", "VIRTUAL_ENV"))}
    return env | {"PATH": os.pathsep.join(path)}


@pytest.fixture
def readme_server(tmp_path: Path) -> Iterator[tuple[str, str, ssl.SSLContext]]:
    """Runs the README's block; yields the MCP URL, the token it minted and a TLS context trusting its cert."""
    lines = https_block()
    assert lines[0].startswith("source .venv/bin/activate") and "serve --transport http" in lines[-1]
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    port = free_port()
    # the block verbatim; around it only: a free port instead of 8000, and the token written where the test
    # can read it, as a user copies it from their shell
    script = "\n".join(["set -e", *lines[:-1], 'printf %s "$NT_MCP_TOKEN" > token.txt', f"exec {lines[-1]}"])
    env = fresh_shell_env() | {"NT_PORT": str(port), "NT_DATA_HOME": str(tmp_path / "data")}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        shell = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            cert, token = tmp_path / "certs" / "dev-cert.pem", tmp_path / "token.txt"
            deadline = time.monotonic() + 90
            while True:
                assert shell.poll() is None, log_path.read_text()
                if cert.exists() and token.exists():
                    context = ssl.create_default_context(cafile=str(cert))
                    try:
                        response = httpx.get(f"https://127.0.0.1:{port}/health/live", verify=context, timeout=2)
                        if response.json() == {"status": "live"}:
                            break
                    except httpx.HTTPError:
                        pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            yield f"https://127.0.0.1:{port}/mcp", token.read_text(), context
        finally:
            shell.send_signal(signal.SIGTERM)
            shell.wait(timeout=60)
    assert shell.returncode == 0, log_path.read_text()


async def test_the_readme_https_block_runs_as_written(readme_server: tuple[str, str, ssl.SSLContext]) -> None:
    url, token, context = readme_server
    async with Client(mcp_transport(url, token, verify=context)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        status = await client.call_tool("server_status", {})
    assert status.structured_content["principal"] == "alice"
    assert status.structured_content["scopes"] == ["backtest", "read"]
    assert "run_backtest" in tools and "place_order" not in tools
