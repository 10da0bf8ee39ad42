"""The guard at the price of a bare SDK call: nt-mcp's ``ping`` vs the mcp SDK's bare ``MCPServer``.

In one run, interleaved rounds, medians; prints each ratio nt-mcp / bare (calls/s; for the
handshake, seconds, so lower is better):

- in memory (the mcp ``Client`` connected to the server object) on SQLite and on PostgreSQL + Redis
  (throwaway servers started like the tests', unless ``--pg-url``/``--redis-url`` are given);
- stdio (each server spawned as a subprocess; calls/s over one session, after ``--warmup-s`` seconds
  of calls so the kernel warm-up thread nt-mcp starts with the session is not in the figure);
- streamable HTTP (servers spawned once, kept running): nt-mcp with TLS + JWT (the product setup) vs
  the bare SDK server over plain HTTP without auth, 1 session and 8 concurrent sessions for
  ``--http-seconds`` each, calls/s with p50/p99 latency per call; nt-mcp also with
  ``NT_HTTP_JSON_RESPONSE`` and with ``NT_HTTP_STATELESS`` (8 sessions). The clients run in this
  process (one core of a 2-core machine), so the figures include the SDK client's own cost;
- handshake: spawn -> initialize -> tools/list -> exit, seconds.

Every guard step stays on for nt-mcp (principal, scope, rate limit with a budget the run cannot spend,
deadline, metrics, audit, the INFO log line). Run: ``python benchmarks/bench_guard.py --rounds 5 --calls 300``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_ping_server import build as build_bare
from tests.cli import server_env
from tests.conftest import make_settings
from tests.servers import free_port

from nt_mcp.infra.observability import configure_logging
from nt_mcp.server.app import build_server
from nt_mcp.server.certs import write_dev_pair
from nt_mcp.tools.services import Services

BUDGET = 10_000_000
JWT_SECRET = secrets.token_urlsafe(32)  # this run only


async def calls_per_s(client: Client, calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        result = await client.call_tool("ping", {"echo": str(i)})
        assert not result.is_error, result
    return calls / (time.perf_counter() - started)


async def in_memory(server: Any, calls: int) -> float:
    async with Client(server) as client:
        await calls_per_s(client, 20)  # warm-up
        return await calls_per_s(client, calls)


def stdio_params(nt: bool, data: Path, extra: dict[str, str]) -> StdioServerParameters:
    env = server_env(data, NT_RATE_LIMIT_PER_MINUTE=str(BUDGET), **extra)
    if nt:
        return StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env)
    script = str(Path(__file__).resolve().parent / "bare_ping_server.py")
    return StdioServerParameters(command=sys.executable, args=[script], env=env)


async def warm_up(client: Client, seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    i = 0
    while i < 20 or time.perf_counter() < deadline:
        await client.call_tool("ping", {"echo": "warm"})
        i += 1


async def over_stdio(params: StdioServerParameters, calls: int, warmup_s: float) -> float:
    async with Client(params, read_timeout_seconds=120) as client:
        await warm_up(client, warmup_s)
        return await calls_per_s(client, calls)


# -- streamable HTTP ---------------------------------------------------------------------------------


@dataclass
class HttpTarget:
    url: str
    token: str | None
    verify: ssl.SSLContext | bool

    def transport(self) -> tuple[Any, httpx2.AsyncClient]:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        http = httpx2.AsyncClient(headers=headers, verify=self.verify, timeout=httpx2.Timeout(30, read=120))
        return streamable_http_client(self.url, http_client=http), http


@dataclass
class HttpFigure:
    calls_per_s: float
    p50_ms: float
    p99_ms: float


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout_s} s")


@contextlib.contextmanager
def http_servers(tmp: Path, variants: dict[str, dict[str, str]]) -> Iterator[dict[str, HttpTarget]]:
    """The bare SDK server (plain HTTP, key ``bare``) and one nt-mcp server (TLS + JWT) per variant,
    each its own process, until the block ends."""
    cert, key = write_dev_pair(tmp / "certs")
    trust = ssl.create_default_context(cafile=str(cert))
    processes: list[subprocess.Popen[bytes]] = []
    targets: dict[str, HttpTarget] = {}
    try:
        port = free_port()
        script = str(Path(__file__).resolve().parent / "bare_ping_server.py")
        bare = subprocess.Popen([sys.executable, script, "--http", str(port)], stderr=subprocess.DEVNULL)
        processes.append(bare)
        _wait_for_port(port, bare)
        targets["bare"] = HttpTarget(f"http://127.0.0.1:{port}/mcp", None, False)
        for name, extra in variants.items():
            port = free_port()
            env = server_env(
                tmp / f"http-{name}",
                NT_RATE_LIMIT_PER_MINUTE=str(BUDGET),
                NT_JWT_SECRET=JWT_SECRET,
                NT_TLS_CERT_FILE=str(cert),
                NT_TLS_KEY_FILE=str(key),
                NT_HTTP_RATE_LIMIT=f"{BUDGET}/minute",
                **extra,
            )
            command = [sys.executable, "-m", "nt_mcp", "serve", "--transport", "http", "--port", str(port)]
            process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
            processes.append(process)
            _wait_for_port(port, process)
            now = int(time.time())
            claims = {
                "iss": "nt-mcp",
                "aud": f"https://127.0.0.1:{port}/mcp",
                "sub": "bench",
                "scope": "read",
                "iat": now,
                "exp": now + 6 * 3600,
            }
            targets[name] = HttpTarget(
                f"https://127.0.0.1:{port}/mcp", jwt.encode(claims, JWT_SECRET, algorithm="HS256"), trust
            )
        yield targets
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def over_http(target: HttpTarget, sessions: int, seconds: float, warmup_s: float) -> HttpFigure:
    """``sessions`` concurrent client sessions calling ``ping`` back to back for ``seconds``."""
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(sessions):
            transport, http = target.transport()
            stack.push_async_callback(http.aclose)
            clients.append(await stack.enter_async_context(Client(transport, read_timeout_seconds=120)))
        await asyncio.gather(*(warm_up(client, warmup_s) for client in clients))

        async def loop(client: Client, until: float) -> int:
            done = 0
            while time.perf_counter() < until:
                started = time.perf_counter()
                result = await client.call_tool("ping", {"echo": str(done)})
                latencies.append(time.perf_counter() - started)
                assert not result.is_error, result
                done += 1
            return done

        started = time.perf_counter()
        counts = await asyncio.gather(*(loop(client, started + seconds) for client in clients))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return HttpFigure(sum(counts) / elapsed, cuts[49] * 1000, cuts[98] * 1000)


async def handshake(params: StdioServerParameters) -> float:
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=120) as client:
        await client.list_tools()
    return time.perf_counter() - started


async def interleave(rounds: int, runs: dict[str, Callable[[], Awaitable[float]]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(await run())
    return {name: statistics.median(values) for name, values in samples.items()}


async def interleave_http(rounds: int, runs: dict[str, Callable[[], Awaitable[HttpFigure]]]) -> dict[str, HttpFigure]:
    samples: dict[str, list[HttpFigure]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(await run())
    return {
        name: HttpFigure(
            statistics.median(f.calls_per_s for f in figures),
            statistics.median(f.p50_ms for f in figures),
            statistics.median(f.p99_ms for f in figures),
        )
        for name, figures in samples.items()
    }


def http_line(figure: str, bare: HttpFigure, nt: HttpFigure) -> str:
    def show(f: HttpFigure) -> str:
        return f"{f.calls_per_s:,.1f} calls/s, p50 {f.p50_ms:.1f} ms, p99 {f.p99_ms:.1f} ms"

    return f"| {figure} | {show(bare)} | {show(nt)} | {nt.calls_per_s / bare.calls_per_s:.2f} |"


def line(figure: str, bare: float, nt: float, unit: str, higher_is_better: bool = True) -> str:
    ratio = nt / bare
    verdict = f"{ratio:.2f}" if higher_is_better else f"{ratio:.2f}x the time"
    return f"| {figure} | {bare:,.1f} {unit} | {nt:,.1f} {unit} | {verdict} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--pg-url", help="PostgreSQL URL (else a throwaway server is started)")
    parser.add_argument("--redis-url", help="Redis URL (else a throwaway server is started)")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="seconds of calls before each stdio/HTTP figure")
    parser.add_argument("--http-seconds", type=float, default=10.0, help="seconds per HTTP figure")
    parser.add_argument("--http-rounds", type=int, default=3)
    parser.add_argument("--only", choices=["memory", "stdio", "http"], help="run one part only")
    args = parser.parse_args()
    parts = {args.only} if args.only else {"memory", "stdio", "http"}

    tmp = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    started: list[Any] = []
    pg_url, redis_url = args.pg_url, args.redis_url
    if not args.skip_pg and parts & {"memory", "stdio"} and (pg_url is None or redis_url is None):
        from tests.servers import PostgresServer, RedisServer

        if pg_url is None:
            pg = PostgresServer.start()
            started.append(pg)
            pg_url = pg.admin_url
        if redis_url is None:
            rs = RedisServer.start()
            started.append(rs)
            redis_url = rs.url
    memory: dict[str, float] = {}
    stdio: dict[str, float] = {}
    http: dict[str, HttpFigure] = {}
    labels = ["SQLite"] + ([] if args.skip_pg else ["PostgreSQL + Redis"])
    try:
        if "memory" in parts:
            sqlite = await Services.start(make_settings(tmp / "sqlite", rate_limit_per_minute=BUDGET))
            stacks = {"SQLite": sqlite}
            if not args.skip_pg:
                stacks["PostgreSQL + Redis"] = await Services.start(
                    make_settings(tmp / "pg", database_url=pg_url, redis_url=redis_url, rate_limit_per_minute=BUDGET)
                )
            bare_server = build_bare()
            configure_logging("INFO")  # as `nt-mcp serve` does (JSON lines on stderr), for both servers
            runs: dict[str, Callable[[], Awaitable[float]]] = {
                "bare in-memory": lambda: in_memory(bare_server, args.calls)
            }
            for label, services in stacks.items():
                server = build_server(services)
                runs[f"nt in-memory {label}"] = lambda server=server: in_memory(server, args.calls)  # type: ignore[misc]
            memory = await interleave(args.rounds, runs)
            for services in stacks.values():
                await services.close()

        if "stdio" in parts:
            w = args.warmup_s
            stdio_runs: dict[str, Callable[[], Awaitable[float]]] = {
                "bare stdio": lambda: over_stdio(stdio_params(False, tmp / "bare", {}), args.calls, w),
                "nt stdio SQLite": lambda: over_stdio(stdio_params(True, tmp / "nt-stdio", {}), args.calls, w),
                "bare handshake": lambda: handshake(stdio_params(False, tmp / "bare", {})),
                "nt handshake": lambda: handshake(stdio_params(True, tmp / "nt-stdio", {})),
            }
            if not args.skip_pg:
                pg_env = {"NT_DATABASE_URL": pg_url, "NT_REDIS_URL": redis_url}
                stdio_runs["nt stdio PG"] = lambda: over_stdio(stdio_params(True, tmp / "nt-pg", pg_env), args.calls, w)
            stdio = await interleave(args.rounds, stdio_runs)

        if "http" in parts:
            variants = {
                "nt": {},
                "nt json": {"NT_HTTP_JSON_RESPONSE": "true"},
                "nt stateless": {"NT_HTTP_STATELESS": "true"},
            }
            with http_servers(tmp, variants) as targets:
                secs, w = args.http_seconds, args.warmup_s
                http_runs: dict[str, Callable[[], Awaitable[HttpFigure]]] = {
                    "bare 1": lambda: over_http(targets["bare"], 1, secs, w),
                    "nt 1": lambda: over_http(targets["nt"], 1, secs, w),
                    "bare 8": lambda: over_http(targets["bare"], 8, secs, w),
                    "nt 8": lambda: over_http(targets["nt"], 8, secs, w),
                    "nt json 8": lambda: over_http(targets["nt json"], 8, secs, w),
                    "nt stateless 8": lambda: over_http(targets["nt stateless"], 8, secs, w),
                }
                http = await interleave_http(args.http_rounds, http_runs)
    finally:
        for server in started:
            server.stop()

    print(
        f"rounds={args.rounds} calls/round={args.calls} warm-up={args.warmup_s:g} s; "
        f"HTTP: rounds={args.http_rounds} x {args.http_seconds:g} s (medians; the machine may be shared and busy)"
    )
    print("| figure | bare SDK | nt-mcp | nt-mcp / bare |")
    print("|---|---|---|---|")
    if memory:
        bare_mem = memory["bare in-memory"]
        for label in labels:
            print(line(f"in-memory `ping`, {label}", bare_mem, memory[f"nt in-memory {label}"], "calls/s"))
    if stdio:
        print(line("stdio `ping`, SQLite", stdio["bare stdio"], stdio["nt stdio SQLite"], "calls/s"))
        if "nt stdio PG" in stdio:
            print(line("stdio `ping`, PostgreSQL + Redis", stdio["bare stdio"], stdio["nt stdio PG"], "calls/s"))
    if http:
        print(http_line("streamable HTTP, 1 session (nt-mcp TLS + JWT vs plain)", http["bare 1"], http["nt 1"]))
        print(http_line("streamable HTTP, 8 sessions (nt-mcp TLS + JWT vs plain)", http["bare 8"], http["nt 8"]))
        print(http_line("8 sessions, nt-mcp `NT_HTTP_JSON_RESPONSE`", http["bare 8"], http["nt json 8"]))
        print(http_line("8 sessions, nt-mcp `NT_HTTP_STATELESS`", http["bare 8"], http["nt stateless 8"]))
    if stdio:
        print(line("spawn -> initialize -> tools/list", stdio["bare handshake"], stdio["nt handshake"], "s", False))


if __name__ == "__main__":
    asyncio.run(main())
