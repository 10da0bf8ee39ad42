"""Scaling out: sweep throughput in-process vs a local 2-worker Dask cluster, the overhead of a tiny job,
and how long the event loop stalls while an in-process sweep runs in a thread.

1. Sweep throughput in bar-steps/s (train bars x parameter sets, summed over symbols) of one universe
   sweep (`optimize_strategy` with `symbols`) through the MCP client: in-process, then with
   NT_DASK_SCHEDULER on a local cluster (`dask scheduler` + 2 `dask worker --nthreads 1` on loopback,
   started here). Rounds interleaved, medians; the report's own elapsed_s (server side).
2. Job overhead: a tiny optimisation (daily bars, 4 parameter sets) as start_job -> polling get_job every
   10 ms until succeeded, vs the same foreground call.
3. Event-loop stall: the worst lateness of a 5 ms asyncio ticker while one SMA sweep chunk runs in a
   worker thread, with the kernel as shipped (``nogil=True``) and the same kernel compiled holding the GIL.

The bars are the seeded synthetic ones. Run (the [dask] extra installed):

    python benchmarks/bench_scale.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp import Client
from numba import njit
from tests.dask_cluster import start_cluster

from nt_mcp.config import Settings
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services

SWEEP: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbols": ["AAA", "BBB", "CCC", "DDD"],
    "data_source": "synthetic",
    "timeframe": "1Hour",
    "start": "2021-01-01T00:00:00Z",
    "end": "2023-12-31T00:00:00Z",
    "param_ranges": {"fast": {"start": 5, "stop": 50, "step": 5}, "slow": {"start": 60, "stop": 250, "step": 10}},
    "top_n": 3,
    "commission": 0.0005,
}
TINY: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbol": "AAA",
    "data_source": "synthetic",
    "start": "2022-01-01T00:00:00Z",
    "end": "2022-12-31T00:00:00Z",
    "param_grid": {"fast": [5, 10], "slow": [30, 60]},
    "top_n": 1,
}


def settings(home: Path, **overrides: Any) -> Settings:
    values = {"data_home": home, "database_url": None, "redis_url": None, "rate_limit_per_minute": 1_000_000}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def client(services: Services) -> Client:
    return Client(NtMCPServer(Guard(services, Principal("bench", frozenset({"read", "backtest"}))), all_tools()))


async def sweep_once(home: Path, dask_scheduler: str) -> tuple[float, int]:
    services = await Services.start(settings(home, dask_scheduler=dask_scheduler))
    try:
        async with client(services) as c:
            result = await c.call_tool("optimize_strategy", SWEEP)
            assert not result.is_error, result.content
            report = result.structured_content or {}
    finally:
        await services.close()
    steps = report["evaluated"] * sum(s["train"]["bars"] for s in report["universe"]["per_symbol"])
    return float(report["elapsed_s"]), steps


async def job_overhead(home: Path, rounds: int) -> tuple[float, float]:
    services = await Services.start(settings(home))
    fg: list[float] = []
    jobs: list[float] = []
    try:
        async with client(services) as c:
            await c.call_tool("optimize_strategy", TINY)  # warm
            for _ in range(rounds * 3):
                t = time.perf_counter()
                assert not (await c.call_tool("optimize_strategy", TINY)).is_error
                fg.append(time.perf_counter() - t)
                t = time.perf_counter()
                start = {"kind": "optimize_strategy", "arguments": TINY}
                job = (await c.call_tool("start_job", start)).structured_content
                assert job is not None
                while True:
                    body = (await c.call_tool("get_job", {"job_id": job["job_id"]})).structured_content or {}
                    if body.get("state") == "succeeded":
                        break
                    assert body.get("state") in ("queued", "running"), body
                    await asyncio.sleep(0.01)
                jobs.append(time.perf_counter() - t)
    finally:
        await services.close()
    return statistics.median(fg), statistics.median(jobs)


async def loop_stall(gil_free: bool) -> float:
    """Worst ticker lateness (s) while one sweep chunk (200 pairs x 20k bars) runs in a thread."""
    from nt_mcp.adapters.data.synthetic import generate_bars
    from nt_mcp.domain.backtest import sweep as sweep_module
    from nt_mcp.domain.backtest.sweep import plan_sweep, sweep_pairs

    shipped = sweep_module._sweep
    if not gil_free:
        sweep_module._sweep = njit(nogil=False)(shipped.py_func)
    try:
        bars = generate_bars("AAA", _utc("2020-01-01"), _utc("2023-12-31"), "1Hour")
        pairs = [p for chunk in plan_sweep(range(5, 55, 5), range(60, 260, 10), len(bars), min_chunks=1) for p in chunk]
        sweep_pairs(bars, pairs[:2])  # compile
        worst = 0.0
        work = asyncio.ensure_future(asyncio.to_thread(sweep_pairs, bars, pairs))
        while not work.done():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t - 0.005)
        await work
        return worst
    finally:
        sweep_module._sweep = shipped


def _utc(day: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(day).replace(tzinfo=UTC)


async def main(rounds: int) -> None:
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cluster = await start_cluster(2, home / "dask")
        try:
            local: list[float] = []
            remote: list[float] = []
            steps = 0
            await sweep_once(home / "warm-local", "")  # compile in this process
            await sweep_once(home / "warm-dask", cluster.address)  # warm the workers
            for r in range(rounds):
                seconds, steps = await sweep_once(home / f"l{r}", "")
                local.append(seconds)
                seconds, _ = await sweep_once(home / f"d{r}", cluster.address)
                remote.append(seconds)
        finally:
            cluster.stop()
        lm, dm = statistics.median(local), statistics.median(remote)
        print(f"sweep: {steps:,} bar-steps; in-process {lm:.2f} s ({steps / lm:,.0f} bar-steps/s)")
        print(f"  2-worker Dask {dm:.2f} s ({steps / dm:,.0f} bar-steps/s); dask/in-process throughput {lm / dm:.2f}x")
        print(f"  rounds in-process {[round(x, 2) for x in local]}, dask {[round(x, 2) for x in remote]}")
        fg, job = await job_overhead(home / "jobs", rounds)
        print(f"tiny job: foreground {fg * 1000:.1f} ms, as a job (start_job -> get_job succeeded) "
              f"{job * 1000:.1f} ms; job/foreground {job / fg:.2f}x (+{(job - fg) * 1000:.1f} ms)")  # fmt: skip
        free = statistics.median([await loop_stall(True) for _ in range(rounds)])
        held = statistics.median([await loop_stall(False) for _ in range(rounds)])
        print(f"event-loop stall during an in-thread sweep: nogil kernel {free * 1000:.1f} ms, "
              f"GIL-holding kernel {held * 1000:.1f} ms; ratio {held / max(free, 1e-6):.1f}x")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
