"""Bounds: no single call can take the machine's memory or outlive its deadline.

Memory is read from Linux's /proc/self/status: ``VmHWM`` (peak resident set) after resetting it to the
current ``VmRSS`` through /proc/self/clear_refs, so each figure is one call's peak above the process's
baseline. The documented bound (README, "Bounds"): one call stays under ``NT_CALL_MEMORY_MB`` (1,024 MB)
above the server's baseline."""

from __future__ import annotations

import asyncio
import gc
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from nt_mcp.config import Settings
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.cli import server_env
from tests.conftest import make_settings
from tests.results import error_of

MB = 1024 * 1024


def _status_mb(field: str, pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _reset_peak(pid: int | str = "self") -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS


async def _idle(max_wait_s: float) -> float:
    """Wait until this process stops burning CPU (no worker thread left computing); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait_s:
        cpu = time.process_time()
        await asyncio.sleep(0.25)
        if time.process_time() - cpu < 0.05:  # under 20 % of one core: only the event loop ticking
            break
    return time.monotonic() - started


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Services]:
    services = await Services.start(make_settings(tmp_path, rate_limit_per_minute=100_000, tool_timeout_s=60))
    try:
        yield services
    finally:
        await services.close()


async def _peak_of(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[float, Any]:
    gc.collect()
    base = _status_mb("VmRSS")
    _reset_peak()
    result = await client.call_tool(tool, arguments)
    return _status_mb("VmHWM") - base, result


async def test_get_bars_generates_only_the_bars_it_returns(stack: Services) -> None:
    async with Client(build_server(stack)) as client:
        await client.call_tool("get_bars", {"symbol": "SPY"})  # warm up
        started = time.perf_counter()
        peak, result = await _peak_of(
            client, "get_bars", {"symbol": "SPY", "timeframe": "1Min", "start": "1995-01-01", "limit": 100}
        )
        elapsed = time.perf_counter() - started
    assert not result.is_error, result.content
    assert result.structured_content["count"] == 100
    # 30 years of 1-minute bars are ~11 million bars (1.7 GB peak when they were all generated first)
    assert peak < 40, f"{peak:.0f} MB"
    assert elapsed < 2


WORST_CALLS: list[tuple[str, dict[str, Any]]] = [
    # the largest backtest allowed: ~4.9 million 1-minute bars
    ("run_backtest", {"strategy": "sma_crossover", "symbol": "SPY", "timeframe": "1Min", "start": "2012-01-01",
                      "end": "2025-01-01"}),
    # the loop path of optimize_strategy on the same bars
    ("optimize_strategy", {"strategy": "rsi_reversion", "symbol": "SPY", "timeframe": "1Min",
                           "start": "2012-01-01", "end": "2025-01-01", "param_grid": {"period": [14]}}),
    # the sweep: 2 fast x 1,000 slow windows (3.4 GB before sweeps were chunked by memory)
    ("optimize_strategy", {"strategy": "sma_crossover", "symbol": "SPY", "timeframe": "15Min",
                           "start": "2019-01-01", "end": "2025-01-01", "param_grid": {"fast": [5, 10]},
                           "param_ranges": {"slow": {"start": 20, "stop": 10_000, "step": 10}}}),
    ("get_bars", {"symbol": "SPY", "timeframe": "1Min", "start": "1995-01-01", "limit": 10_000}),
]  # fmt: skip


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def _quiet(pid: int, max_wait_s: float = 120) -> None:
    """Wait until the server process stops computing (its background kernel warm-up has finished)."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        before = _cpu_s(pid)
        await asyncio.sleep(0.5)
        if _cpu_s(pid) - before < 0.05:
            return


@pytest.mark.slow
async def test_the_worst_known_calls_stay_within_the_per_call_memory_bound(tmp_path: Path) -> None:
    """Each call's peak resident memory above the baseline of a fresh `nt-mcp serve` (measured from outside,
    so nothing else of the test process can add to it)."""
    pid_file = tmp_path / "server.pid"
    command = f"echo $$ > {shlex.quote(str(pid_file))}; exec {shlex.quote(sys.executable)} -m nt_mcp serve"
    env = server_env(tmp_path / "data", NT_RATE_LIMIT_PER_MINUTE="100000", NT_TOOL_TIMEOUT_S="120")
    params = StdioServerParameters(command="/bin/sh", args=["-c", command], env=env, cwd=str(tmp_path))
    bound = Settings().call_memory_mb
    peaks = {}
    async with Client(params, read_timeout_seconds=180) as client:
        pid = int(pid_file.read_text())
        # warm up: the kernels compiled and the stores opened first (numba's one-time compilation takes ~200 MB
        # of its own); the bound is about what a call's data takes
        await client.call_tool("run_backtest", {"strategy": "sma_crossover", "symbol": "SPY"})
        await client.call_tool("run_backtest", {"strategy": "rsi_reversion", "symbol": "SPY"})
        small_grid = {"fast": [5, 10], "slow": [20, 30]}
        await client.call_tool(
            "optimize_strategy", {"strategy": "sma_crossover", "symbol": "SPY", "param_grid": small_grid}
        )
        await _quiet(pid)
        for i, (tool, arguments) in enumerate(WORST_CALLS):
            base = _status_mb("VmRSS", pid)
            _reset_peak(pid)
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content
            peaks[f"{i}:{tool}"] = round(_status_mb("VmHWM", pid) - base)
    print("peaks above baseline (MB):", peaks)
    assert all(peak < bound for peak in peaks.values()), peaks
    assert peaks["2:optimize_strategy"] < 300  # chunked by memory (seen: 74-169 MB), not 3.4 GB of (windows x bars)


async def test_an_optimisation_over_the_work_budget_is_refused_before_any_work(stack: Services) -> None:
    arguments = {
        "strategy": "sma_crossover",
        "symbol": "SPY",
        "timeframe": "1Min",
        "start": "2012-01-01",
        "end": "2025-01-01",
        "param_ranges": {"fast": {"start": 2, "stop": 40, "step": 1}, "slow": {"start": 50, "stop": 2000, "step": 40}},
    }  # ~1,900 combinations x 4.9 million bars: the 7.6 GB, still running after its TIMEOUT
    async with Client(build_server(stack)) as client:
        started = time.perf_counter()
        peak, result = await _peak_of(client, "optimize_strategy", arguments)
        elapsed = time.perf_counter() - started
    error = error_of(result)
    assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == "param_grid"
    assert "NT_OPTIMIZE_MAX_WORK" in error["message"] and "use at most 204 combinations" in error["message"]
    assert elapsed < 1 and peak < 20  # refused from the range alone: no bar was generated


async def test_an_optimisation_over_the_memory_budget_names_the_range(tmp_path: Path) -> None:
    services = await Services.start(make_settings(tmp_path, call_memory_mb=128))
    arguments = {"strategy": "rsi_reversion", "symbol": "SPY", "timeframe": "1Min", "start": "2023-01-01",
                 "end": "2025-01-01", "param_grid": {"period": [14]}}  # fmt: skip
    async with Client(build_server(services)) as client:
        error = error_of(await client.call_tool("optimize_strategy", arguments))
    await services.close()
    assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == "start"
    assert "NT_CALL_MEMORY_MB" in error["message"]


SLOW_SWEEP = {
    "strategy": "sma_crossover",
    "symbol": "SPY",
    "timeframe": "1Min",
    "start": "2023-07-01",
    "end": "2025-01-01",
    "param_grid": {"fast": [5]},
    "param_ranges": {"slow": {"start": 20, "stop": 10_000, "step": 5}},
}  # ~400k training bars x 1,997 pairs (MAX_COMBINATIONS 2,000; 0.8 of NT_OPTIMIZE_MAX_WORK): ~5 s of CPU
# (a year x 999 pairs took 1.9 s once sweeps kept their averages between chunks: inside the 2 s deadline).
# Before sweeps were chunked by memory and work this was one chunk of ~4 GB that went on for seconds after
# its call was stopped.


@pytest.mark.parametrize("how", ["deadline", "client_cancels"])
async def test_a_stopped_sweep_frees_its_cpu_and_memory(tmp_path: Path, how: str) -> None:
    # warm up: the same sweep run to its end once, in this process, with no deadline, so that every kernel
    # specialisation it reaches (chunks that read the sweep's average cache included) is compiled before the
    # baseline: numba's compiler keeps ~100+ MB of its own, which is not what this test is about
    warm = await Services.start(make_settings(tmp_path / "warm", rate_limit_per_minute=100_000, tool_timeout_s=300))
    async with Client(build_server(warm)) as client:
        assert not (await client.call_tool("optimize_strategy", SLOW_SWEEP)).is_error
    await warm.close()
    services = await Services.start(
        make_settings(tmp_path, rate_limit_per_minute=100_000, tool_timeout_s=2.0 if how == "deadline" else 60)
    )
    async with Client(build_server(services)) as client:
        small = SLOW_SWEEP | {"param_ranges": {"slow": {"start": 20, "stop": 100, "step": 10}}}
        assert not (await client.call_tool("optimize_strategy", small)).is_error  # warm up (compile, imports)
        await _idle(5)
        gc.collect()
        baseline = _status_mb("VmRSS")
        started = time.monotonic()
        if how == "deadline":
            error = error_of(await client.call_tool("optimize_strategy", SLOW_SWEEP))
            assert error["code"] == "TIMEOUT" and error["retryable"] is True
        else:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.call_tool("optimize_strategy", SLOW_SWEEP), timeout=2.0)
        stopped = time.monotonic() - started
        busy_after = await _idle(10)
        gc.collect()
        rss_after = _status_mb("VmRSS")
        rows = await services.audit.recent("local-operator", 1)
    await services.close()
    assert stopped < 4
    assert busy_after < 3  # the chunk that was running finished within about a second; nothing else ran
    assert rss_after - baseline < 80, (baseline, rss_after)
    assert rows[0].tool == "optimize_strategy" and rows[0].outcome == ("TIMEOUT" if how == "deadline" else "CANCELLED")
