"""A fresh `nt-mcp serve` subprocess over stdio answers its first run_backtest on GOOG (files source) with
the engine's numbers. The wall time from spawning the process to the answer is measured and reported
(benchmarks/bench_cold_start.py repeats it; speed targets are not asserted in tests)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.strategies import run_strategy
from tests.cli import server_env
from tests.integration.test_backtesting_tools import goog_bars, write_goog_csv


async def test_fresh_stdio_server_answers_first_backtest_on_goog(tmp_path: Path) -> None:
    write_goog_csv(tmp_path / "market")
    env = server_env(tmp_path / "data", NT_DATA_DIR=str(tmp_path / "market"))
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=120) as client:
        ready = time.perf_counter() - started
        result = await client.call_tool(
            "run_backtest", {"strategy": "sma_crossover", "symbol": "GOOG", "params": {"fast": 10, "slow": 30}}
        )
        elapsed = time.perf_counter() - started
    assert not result.is_error, result.content
    body = result.structured_content
    ours = run_strategy(goog_bars(), "sma_crossover", {"fast": 10, "slow": 30}, BacktestConfig())
    assert body["data"]["source"] == "files"  # the default with NT_DATA_DIR set and no Alpaca keys
    assert body["metrics"]["final_equity"] == ours.metrics.final_equity
    assert body["trade_count"] == len(ours.trades)
    assert any(c.type == "image" for c in result.content)
    sys.stderr.write(
        f"\nfresh nt-mcp serve -> first run_backtest answer on GOOG: {elapsed:.2f} s "
        f"(initialized after {ready:.2f} s; handler {body['elapsed_s']:.2f} s)\n"
    )
