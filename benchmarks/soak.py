"""Soak: N HTTP sessions calling the server for M minutes; does its memory or its open files grow?

    python benchmarks/soak.py [--sessions 8] [--minutes 10] [--warmup-minutes 2] [--interval 30]
                              [--database-url postgresql://...] [--redis-url redis://...]

Starts a real ``nt-mcp serve --transport http`` (its own data home; SQLite unless --database-url),
mints one HS256 token per session, and has each session loop over a fixed mix through the real MCP
client: ping 35 %, server_status 15 %, get_positions 15 %, get_orders 10 %, run_backtest (one year of
daily synthetic bars) 10 %, place_order 15 % (1 share of SPY, buying and selling in turn, on the paper
broker). Every ``--interval`` seconds it prints the window's calls/s, p50 and p99 latency, errors by
code, and the server's RSS (``VmRSS``) and open file descriptors (``/proc/<pid>/fd``). At the end it
fits a line through the samples taken after the warm-up and prints a verdict:

- flat: RSS grows less than 1 MB a minute (a leak of a few hundred bytes a call would show) and the
  open descriptors move by at most 4;
- growing: anything more, with the slope.

Linux only (it reads /proc). Needs the ``test`` extra (for httpx2 through the mcp client).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import jwt
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

SECRET = "soak-secret-0123456789abcdef-0123456789abcdef"  # noqa: S105 - a throwaway server of its own
MIX = [
    ("ping", 35),
    ("server_status", 15),
    ("get_positions", 15),
    ("get_orders", 10),
    ("run_backtest", 10),
    ("place_order", 15),
]


@dataclass
class Window:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_memory(pid: int) -> tuple[float, int]:
    """(RSS in MB, open file descriptors) of ``pid``."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def token(sub: str, port: int) -> str:
    now = int(time.time())
    claims = {
        "iss": "nt-mcp",
        "aud": f"http://127.0.0.1:{port}/mcp",
        "sub": sub,
        "scope": "read backtest trade",
        "iat": now,
        "exp": now + 7 * 86_400,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def arguments_for(tool: str, turn: int) -> dict[str, Any]:
    if tool == "run_backtest":
        return {"strategy": "sma_crossover", "symbol": "SPY"}
    if tool == "place_order":
        return {"symbol": "SPY", "side": "buy" if turn % 2 == 0 else "sell", "qty": "1"}
    if tool == "ping":
        return {"echo": f"soak {turn}"}
    return {}


async def session(index: int, port: int, stop_at: float, window: list[Window]) -> int:
    """One MCP session calling the mix until ``stop_at``; returns its number of calls."""
    rng = random.Random(index)  # a workload mix, not a secret
    tools, weights = zip(*MIX, strict=True)
    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {token(f'soak-{index}', port)}"}, timeout=httpx2.Timeout(30, read=120)
    )
    calls = orders = 0
    async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
        while time.monotonic() < stop_at:
            tool = rng.choices(tools, weights)[0]
            arguments = arguments_for(tool, orders)
            orders += tool == "place_order"
            started = time.perf_counter()
            try:
                result = await client.call_tool(tool, arguments)
                outcome = "ok"
                if result.is_error:
                    outcome = str((result.meta or {}).get("nt-mcp/error", {}).get("code", "error"))
            except Exception as error:  # a transport failure is a result of the soak too
                outcome = f"transport:{type(error).__name__}"
            elapsed = time.perf_counter() - started
            current = window[0]
            current.latencies.append(elapsed)
            if outcome != "ok":
                current.errors[outcome] += 1
            calls += 1
    return calls


def start_server(port: int, data_home: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NT_")}
    env |= {
        "NT_DATA_HOME": str(data_home),
        "NT_JWT_SECRET": SECRET,
        "NT_PORT": str(port),
        "NT_RATE_LIMIT_PER_MINUTE": "1000000",
        "NT_HTTP_RATE_LIMIT": "1000000/minute",
        "NT_RISK_MAX_ORDERS_PER_DAY": "0",
        "NT_LOG_LEVEL": "WARNING",
    }
    if args.database_url:
        env["NT_DATABASE_URL"] = args.database_url
    if args.redis_url:
        env["NT_REDIS_URL"] = args.redis_url
    server = subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve", "--transport", "http"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(data_home / "server.log", "wb"),  # noqa: SIM115 - lives as long as the server
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server did not listen on {port}; see {data_home / 'server.log'}")


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    if len(samples) < 2:
        return 0.0
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


async def main(args: argparse.Namespace) -> int:
    port = free_port()
    data_home = Path(tempfile.mkdtemp(prefix="nt-mcp-soak-"))
    server = start_server(port, data_home, args)
    window = [Window()]
    rss_samples: list[tuple[float, float]] = []
    fd_samples: list[tuple[float, float]] = []
    total_calls = 0
    try:
        started = time.monotonic()
        stop_at = started + args.minutes * 60
        tasks = [asyncio.create_task(session(i, port, stop_at, window)) for i in range(args.sessions)]
        rss, fds = process_memory(server.pid)
        print(f"server pid {server.pid}, {args.sessions} sessions, {args.minutes} min; at start RSS {rss:.0f} MB, "
              f"{fds} fds", flush=True)  # fmt: skip
        print(f"{'t (s)':>6} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8} {'fds':>5}  errors", flush=True)
        while time.monotonic() < stop_at:
            await asyncio.sleep(min(args.interval, max(0.0, stop_at - time.monotonic())))
            done, window[0] = window[0], Window()
            elapsed = time.monotonic() - started
            rss, fds = process_memory(server.pid)
            if elapsed >= args.warmup_minutes * 60:
                rss_samples.append((elapsed, rss))
                fd_samples.append((elapsed, fds))
            latencies = sorted(done.latencies) or [0.0]
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            rate = len(done.latencies) / args.interval
            errors = ", ".join(f"{code} {count}" for code, count in done.errors.most_common()) or "-"
            print(f"{elapsed:6.0f} {rate:8.1f} {p50:8.1f} {p99:8.1f} {rss:8.0f} {fds:5d}  {errors}", flush=True)
        total_calls = sum(await asyncio.gather(*tasks))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    rss_slope = slope_per_minute(rss_samples)
    fd_range = (max(v for _, v in fd_samples) - min(v for _, v in fd_samples)) if fd_samples else 0
    flat = rss_slope < 1.0 and fd_range <= 4
    print(f"{total_calls} calls in {args.minutes} min ({total_calls / (args.minutes * 60):.1f}/s); after the "
          f"{args.warmup_minutes}-minute warm-up: RSS slope {rss_slope:+.2f} MB/min "
          f"({rss_samples[0][1] if rss_samples else 0:.0f} -> {rss_samples[-1][1] if rss_samples else 0:.0f} MB), "
          f"fds range {fd_range:.0f}")  # fmt: skip
    print(f"verdict: {'flat' if flat else 'growing'}; server exit code {server.returncode}")
    return 0 if flat else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup-minutes", type=float, default=2)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
