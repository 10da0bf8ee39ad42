"""Throwaway PostgreSQL and Redis servers for the tests, on free loopback ports.

PostgreSQL comes from the installed binaries (``/usr/lib/postgresql/<version>/bin``): ``initdb``
into a temporary directory and ``pg_ctl start``; when the tests run as root the server runs as
the ``postgres`` OS user, as PostgreSQL requires. Redis is ``redis-server`` with persistence off.
Both are stopped and their directories removed when the test session ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def postgres_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql; run ./scripts/test")
    return Path(candidates[-1])


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    bin_dir: Path
    as_user: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    @classmethod
    def start(cls) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="nt-mcp-pg-"))
        as_user = "postgres" if os.geteuid() == 0 else None
        if as_user:
            shutil.chown(root, user=as_user)
        server = cls(port=free_port(), data_dir=root / "data", bin_dir=postgres_bin_dir(), as_user=as_user)
        server._run("initdb", "-D", str(server.data_dir), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = (
            f"-p {server.port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        server._run("pg_ctl", "-D", str(server.data_dir), "-o", options, "-l", str(root / "log"), "-w", "start")
        _wait_for_port(server.port)
        return server

    def halt(self) -> None:
        """Stop the server, keeping its data (an outage). Fast mode: clients are cut off at once, and
        what was committed stays committed (immediate mode would also drop the commits that
        ``synchronous_commit=off`` had not flushed yet, which is this test server's setting, not an outage)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def begin_smart_shutdown(self) -> None:
        """Ask the server to stop in smart mode and return at once: while any session stays open it is
        "shutting down", refusing every new connection with SQLSTATE 57P03 (CannotConnectNowError)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "smart", "-W", "stop")

    def wait_stopped(self, timeout_s: float = 30.0) -> None:
        """Wait until the server process is gone (after `begin_smart_shutdown` and its last session ended)."""
        deadline = time.monotonic() + timeout_s
        while (self.data_dir / "postmaster.pid").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not stop")
            time.sleep(0.05)

    def resume(self) -> None:
        """Start it again on the same port after `halt`."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir.parent} -c fsync=off"
        log = str(self.data_dir.parent / "log")
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", log, "-w", "start")
        _wait_for_port(self.port)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, port: int | None = None) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; run ./scripts/test")
        workdir = Path(tempfile.mkdtemp(prefix="nt-mcp-redis-"))
        port = port or free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(port)
        return cls(port=port, process=process, workdir=workdir)

    def freeze(self) -> None:
        """SIGSTOP: Redis keeps its connections open and answers nothing (a hung server)."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
