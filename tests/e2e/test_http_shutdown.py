"""SIGTERM on a real `nt-mcp serve --transport http` process while a tool call is running: the call
finishes with its real result, new connections are refused meanwhile, and the process exits 0.

How the call is made slow, honestly: `get_audit_log` is a product tool that reads the audit table.
The test holds an ACCESS EXCLUSIVE lock on that table from its own PostgreSQL connection, so the
tool's SELECT waits on the lock. The test sends SIGTERM while it waits, checks the server is still
draining, then releases the lock; the query completes and the result reaches the client."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
from mcp import Client

from tests.cli import server_env
from tests.http_support import SECRET, http_settings, make_token, mcp_transport
from tests.servers import free_port


def _wait_live(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not become live")


def _start(port: int, env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    with open(tmp_path / "server.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "nt_mcp", "serve", "--transport", "http", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _connectable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_sigterm_lets_the_running_call_finish_and_exits_0(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    settings = http_settings(tmp_path, port=port)
    env = server_env(tmp_path / "data", NT_DATABASE_URL=pg_url, NT_JWT_SECRET=SECRET, NT_SHUTDOWN_GRACE_S="30")
    process = _start(port, env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, process)
        token = make_token(settings, sub="draining-user")
        lock_conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            client = Client(mcp_transport(f"{url}/mcp", token))
            await client.__aenter__()
            assert not (await client.call_tool("ping", {"echo": "warm"})).is_error
            transaction = lock_conn.transaction()
            await transaction.start()
            await lock_conn.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
            call = asyncio.create_task(client.call_tool("get_audit_log", {"limit": 5}))
            await asyncio.sleep(1.0)
            assert not call.done()  # waiting on the lock
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.5)
            assert process.poll() is None, "exited while a call was running"
            assert not _connectable(port), "still accepting new connections while draining"
            await transaction.commit()  # release the lock: the query completes
            result = await asyncio.wait_for(call, timeout=20)
            with contextlib.suppress(BaseException):  # the server is going away: closing may fail
                await client.__aexit__(None, None, None)
        finally:
            await lock_conn.close()
        assert not result.is_error, result.content
        assert result.structured_content["principal"] == "draining-user"
        assert [e["tool"] for e in result.structured_content["entries"]] == ["ping"]
        assert process.wait(timeout=30) == 0
        log = (tmp_path / "server.log").read_text()
        assert "drained" in log and "services closed" in log
        assert token not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
