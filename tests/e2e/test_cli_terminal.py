"""`nt-mcp serve` started by hand in a terminal says what it is waiting for; under a client it says nothing."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli import server_env

WAITING = "waiting for an MCP client on stdin"


def test_on_a_terminal_serve_says_it_waits_for_a_client(tmp_path: Path) -> None:
    terminal, tty = pty.openpty()
    server = subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve"],
        stdin=tty,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(tmp_path / "data"),
        cwd=tmp_path,
    )
    os.close(tty)
    seen = b""
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 60
        while b'"msg": "serving"' not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([server.stderr], [], [], 1.0)
            if ready:
                seen += os.read(server.stderr.fileno(), 4096)
            assert server.poll() is None, seen.decode()
        server.send_signal(signal.SIGINT)  # Ctrl-C, as the message says
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
        os.close(terminal)
    line = next(line for line in seen.decode().splitlines() if WAITING in line)
    assert line.startswith("nt-mcp: serving MCP over stdio") and "Ctrl-C quits" in line and "README" in line
    assert not line.startswith("{")  # a sentence for a person, not a JSON log line


def test_sigterm_stops_a_stdio_server_at_once(tmp_path: Path) -> None:
    """A client that ends the server with SIGTERM while stdin is still open gets a prompt, clean exit."""
    server = subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=server_env(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert server.stdin is not None and server.stderr is not None
    try:
        seen = b""
        while b'"msg": "serving"' not in seen:
            line = server.stderr.readline()
            assert line, "the server ended before serving"
            seen += line
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        seen += server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
        server.stdin.close()
        server.stderr.close()
    assert b'"msg": "stopped by a signal"' in seen


def test_under_a_client_serve_does_not_say_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nt_mcp", "serve"],
        stdin=subprocess.DEVNULL,  # a pipe, as MCP clients give: EOF at once, so the server ends
        capture_output=True,
        text=True,
        env=server_env(tmp_path / "data"),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0 and WAITING not in result.stderr and result.stdout == ""
