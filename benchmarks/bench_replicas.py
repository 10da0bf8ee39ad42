"""Throughput and tail latency through HAProxy (deploy/haproxy.cfg) with one replica vs two.

Starts throwaway PostgreSQL and Redis (like the tests), two stateless `nt-mcp serve --transport http`
replicas, and two HAProxy instances running deploy/haproxy.cfg: one whose two server lines both point
at replica 1 (one replica), one over replicas 1 and 2. Each round runs the same load through each
balancer in turn (interleaved): ``--concurrency`` MCP client sessions (one stateless session each)
making ``--calls`` calls in all, of one tool:

- ``ping``: the guard's overhead (auth, scope, rate limit in Redis, audit) per call;
- ``run_backtest``: a heavier call (sma_crossover on four years of synthetic daily bars).

Prints calls/s and p50/p99 latency per setup (medians over rounds) and the two-replica/one-replica
ratio. The client runs on the same machine, so on a small box it competes with the replicas for
cores; note the load average printed with the figures.

Run: ``python benchmarks/bench_replicas.py --rounds 3 --calls 400 --concurrency 8``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.http_support import SECRET, http_settings, make_token, mcp_transport
from tests.lb_support import haproxy, start_replica, stop, wait_ready
from tests.servers import PostgresServer, RedisServer, free_port

WORKLOADS: dict[str, dict[str, Any]] = {
    "ping": {},
    "run_backtest": {"strategy": "sma_crossover", "symbol": "SPY", "start": "2020-01-01", "end": "2023-12-31"},
}


async def run_load(url: str, token: str, tool: str, calls: int, concurrency: int) -> tuple[float, list[float]]:
    """(calls/s, latencies in seconds) of ``calls`` calls of ``tool`` from ``concurrency`` sessions."""
    latencies: list[float] = []
    per_client = calls // concurrency
    arguments = WORKLOADS[tool]

    async def one_client() -> None:
        async with Client(mcp_transport(url, token), read_timeout_seconds=120) as client:
            for _ in range(per_client):
                started = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                latencies.append(time.perf_counter() - started)
                if result.is_error:
                    raise RuntimeError(f"{tool} failed: {result.content}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tools", default="ping,run_backtest")
    args = parser.parse_args()
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    workdir = Path(tempfile.mkdtemp(prefix="nt-bench-replicas-"))
    postgres, redis = PostgresServer.start(), RedisServer.start()
    replicas = []
    try:
        admin = await asyncpg.connect(postgres.admin_url)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        pg_url = f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/bench"
        lb_ports = {"1 replica": free_port(), "2 replicas": free_port()}
        # one audience for both balancers: the replicas accept tokens for this URL whichever port sent them
        public_url = "http://127.0.0.1:1"
        env = {
            "NT_DATABASE_URL": pg_url,
            "NT_REDIS_URL": redis.url,
            "NT_JWT_SECRET": SECRET,
            "NT_PUBLIC_URL": public_url,
            "NT_HTTP_STATELESS": "true",
            "NT_RATE_LIMIT_PER_MINUTE": "100000000",
            "NT_HTTP_RATE_LIMIT": "100000000/minute",
            "NT_LOG_LEVEL": "WARNING",
        }
        replicas = [start_replica(f"replica{i}", workdir, env) for i in (1, 2)]
        for replica in replicas:
            wait_ready(replica)
        token = make_token(http_settings(workdir, public_url=public_url), sub="bench", scope="read backtest")
        one, two = replicas[0].address, replicas[1].address
        with (
            haproxy(binary, one, one, workdir / "lb1.log", lb_ports["1 replica"]) as lb1,
            haproxy(binary, one, two, workdir / "lb2.log", lb_ports["2 replicas"]) as lb2,
        ):
            urls = {"1 replica": f"{lb1.url}/mcp", "2 replicas": f"{lb2.url}/mcp"}
            for tool in args.tools.split(","):
                await run_load(urls["2 replicas"], token, tool, args.concurrency * 4, args.concurrency)  # warm up
                rates: dict[str, list[float]] = {k: [] for k in urls}
                p50: dict[str, list[float]] = {k: [] for k in urls}
                p99: dict[str, list[float]] = {k: [] for k in urls}
                for _ in range(args.rounds):
                    for setup, url in urls.items():
                        rate, latencies = await run_load(url, token, tool, args.calls, args.concurrency)
                        rates[setup].append(rate)
                        p50[setup].append(quantile(latencies, 0.50))
                        p99[setup].append(quantile(latencies, 0.99))
                for setup in urls:
                    print(
                        f"{tool:>12} {setup:>10}: {statistics.median(rates[setup]):8.1f} calls/s  "
                        f"p50 {statistics.median(p50[setup]) * 1000:7.1f} ms  "
                        f"p99 {statistics.median(p99[setup]) * 1000:7.1f} ms"
                    )
                ratio = statistics.median(rates["2 replicas"]) / statistics.median(rates["1 replica"])
                print(f"{tool:>12} 2 replicas / 1 replica: {ratio:.2f}x calls/s")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average {load}; {os.cpu_count()} cores; {args.concurrency} sessions, {args.calls} calls a round")
    finally:
        for replica in replicas:
            stop(replica.process)
        redis.stop()
        postgres.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)


if __name__ == "__main__":
    asyncio.run(main())
