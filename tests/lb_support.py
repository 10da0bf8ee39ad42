"""nt-mcp replicas behind HAProxy on loopback, for the load-balancer test and benchmark: replicas are
real `nt-mcp serve --transport http` processes; HAProxy runs deploy/haproxy.cfg itself, its
addresses given in the environment variables that file reads."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.cli import server_env
from tests.servers import free_port

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_replica(name: str, workdir: Path, env: dict[str, str]) -> Replica:
    """`nt-mcp serve --transport http` on a free port, its own NT_DATA_HOME, stderr in ``<name>.log``;
    HTTPS when ``env`` names a certificate (NT_TLS_CERT_FILE)."""
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "nt_mcp", "serve", "--transport", "http", "--port", str(port)],
            env=server_env(workdir / name, **env),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return Replica(name, port, process, log, "https" if env.get("NT_TLS_CERT_FILE") else "http")


def wait_ready(replica: Replica, timeout_s: float = 60, verify: ssl.SSLContext | bool = True) -> None:
    """Until the replica's /health/ready answers 200 (RuntimeError with its log if it exits or never does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise RuntimeError(f"{replica.name} exited with {replica.process.returncode}: {replica.log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{replica.url}/health/ready", timeout=1, verify=verify).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{replica.name} did not become ready: {replica.log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@dataclass
class Balancer:
    url: str
    stats_url: str
    process: subprocess.Popen[bytes]


def haproxy_env(lb_port: int, stats_port: int, first: str, second: str) -> dict[str, str]:
    return os.environ | {
        "NT_LB_BIND": f"127.0.0.1:{lb_port}",
        "NT_LB_STATS_BIND": f"127.0.0.1:{stats_port}",
        "NT_REPLICA_1": first,
        "NT_REPLICA_2": second,
    }


def check_config(binary: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``haproxy -c -f deploy/haproxy.cfg`` with ``env``."""
    return subprocess.run([binary, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, timeout=30)


def server_stats(stats_url: str) -> dict[str, dict[str, str]]:
    """HAProxy's CSV statistics of the nt_mcp backend's servers, by server name."""
    text = httpx.get(stats_url, timeout=5).text.lstrip("# ")
    return {
        row["svname"]: row
        for row in csv.DictReader(io.StringIO(text))
        if row["pxname"] == "nt_mcp" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def served(stats_url: str) -> dict[str, int]:
    """Requests each server has been sent so far (HAProxy's ``stot``)."""
    return {name: int(row["stot"]) for name, row in server_stats(stats_url).items()}


@contextlib.contextmanager
def haproxy(
    binary: str,
    first: str,
    second: str,
    log: Path,
    lb_port: int | None = None,
    tls: dict[str, str] | None = None,
) -> Iterator[Balancer]:
    """deploy/haproxy.cfg in the foreground on ``lb_port`` (default: a free one) over the replicas at
    ``first`` and ``second`` (host:port), once both are UP; stopped when the block ends. ``tls``:
    NT_LB_TLS_PEM (HTTPS for clients) and NT_REPLICA_CA (HTTPS to the replicas)."""
    lb_port, stats_port = lb_port or free_port(), free_port()
    env = haproxy_env(lb_port, stats_port, first, second) | (tls or {})
    check = check_config(binary, env)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c refused deploy/haproxy.cfg: {check.stdout}{check.stderr}")
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], env=env, stdout=sink, stderr=sink)
    scheme = "https" if tls and "NT_LB_TLS_PEM" in tls else "http"
    balancer = Balancer(f"{scheme}://127.0.0.1:{lb_port}", f"http://127.0.0.1:{stats_port}/stats;csv", process)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if all(row["status"] == "UP" for row in server_stats(balancer.stats_url).values()):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"HAProxy did not see both replicas UP: {log.read_text()}")
            time.sleep(0.1)
        yield balancer
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_status(stats_url: str, server: str, status: str, timeout_s: float = 20) -> float:
    """Seconds until HAProxy reports ``server`` with ``status`` (e.g. DOWN); AssertionError after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if server_stats(stats_url)[server]["status"].startswith(status):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"HAProxy did not mark {server} {status}: {server_stats(stats_url)[server]}")
