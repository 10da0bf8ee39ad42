"""The guard at the price of a bare SDK call: nt-mcp's ``ping`` vs the mcp SDK's bare ``MCPServer``.

In one run, interleaved rounds, medians; prints each ratio nt-mcp / bare (calls/s; for the
handshake, seconds, so lower is better):

- in memory (the mcp ``Client`` connected to the server object) on SQLite and on PostgreSQL + Redis
  (throwaway servers started like the tests', unless ``--pg-url``/``--redis-url`` are given);
- stdio (each server spawned as a subprocess; calls/s over one session);
- handshake: spawn -> initialize -> tools/list -> exit, seconds.

Every guard step stays on for nt-mcp (principal, scope, rate limit with a budget the run cannot spend,
deadline, metrics, audit). Run: ``python benchmarks/bench_guard.py --rounds 5 --calls 300``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_ping_server import build as build_bare
from tests.cli import server_env
from tests.conftest import make_settings

from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services

BUDGET = 10_000_000


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


async def over_stdio(params: StdioServerParameters, calls: int) -> float:
    async with Client(params, read_timeout_seconds=120) as client:
        await calls_per_s(client, 20)
        return await calls_per_s(client, calls)


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
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    started: list[Any] = []
    pg_url, redis_url = args.pg_url, args.redis_url
    if not args.skip_pg and (pg_url is None or redis_url is None):
        from tests.servers import PostgresServer, RedisServer

        if pg_url is None:
            pg = PostgresServer.start()
            started.append(pg)
            pg_url = pg.admin_url
        if redis_url is None:
            rs = RedisServer.start()
            started.append(rs)
            redis_url = rs.url
    try:
        sqlite = await Services.start(make_settings(tmp / "sqlite", rate_limit_per_minute=BUDGET))
        stacks = {"SQLite": sqlite}
        if not args.skip_pg:
            stacks["PostgreSQL + Redis"] = await Services.start(
                make_settings(tmp / "pg", database_url=pg_url, redis_url=redis_url, rate_limit_per_minute=BUDGET)
            )
        bare_server = build_bare()
        runs: dict[str, Callable[[], Awaitable[float]]] = {"bare in-memory": lambda: in_memory(bare_server, args.calls)}
        for label, services in stacks.items():
            server = build_server(services)
            runs[f"nt in-memory {label}"] = lambda server=server: in_memory(server, args.calls)  # type: ignore[misc]
        memory = await interleave(args.rounds, runs)
        for services in stacks.values():
            await services.close()

        stdio_runs: dict[str, Callable[[], Awaitable[float]]] = {
            "bare stdio": lambda: over_stdio(stdio_params(False, tmp / "bare", {}), args.calls),
            "nt stdio SQLite": lambda: over_stdio(stdio_params(True, tmp / "nt-stdio", {}), args.calls),
            "bare handshake": lambda: handshake(stdio_params(False, tmp / "bare", {})),
            "nt handshake": lambda: handshake(stdio_params(True, tmp / "nt-stdio", {})),
        }
        if not args.skip_pg:
            pg_env = {"NT_DATABASE_URL": pg_url, "NT_REDIS_URL": redis_url}
            stdio_runs["nt stdio PG"] = lambda: over_stdio(stdio_params(True, tmp / "nt-pg", pg_env), args.calls)
        stdio = await interleave(args.rounds, stdio_runs)
    finally:
        for server in started:
            server.stop()

    print(f"rounds={args.rounds} calls/round={args.calls} (medians; the machine may be shared and busy)")
    print("| figure | bare SDK | nt-mcp | nt-mcp / bare |")
    print("|---|---|---|---|")
    bare_mem = memory["bare in-memory"]
    for label in stacks:
        print(line(f"in-memory `ping`, {label}", bare_mem, memory[f"nt in-memory {label}"], "calls/s"))
    print(line("stdio `ping`, SQLite", stdio["bare stdio"], stdio["nt stdio SQLite"], "calls/s"))
    if "nt stdio PG" in stdio:
        print(line("stdio `ping`, PostgreSQL + Redis", stdio["bare stdio"], stdio["nt stdio PG"], "calls/s"))
    print(line("spawn -> initialize -> tools/list", stdio["bare handshake"], stdio["nt handshake"], "s", False))


if __name__ == "__main__":
    asyncio.run(main())
