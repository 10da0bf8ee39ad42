"""Right after an install (numba's cache empty), a fresh `nt-mcp serve` answers its first run_backtest and
optimize_strategy while its kernels still compile, with the numbers the compiled engine gives."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.backtest.sweep import sweep_sma_crossover
from nt_mcp.domain.strategies import run_strategy
from tests.cli import server_env
from tests.integration.test_backtesting_tools import goog_bars, write_goog_csv


def _same(a: Any, b: Any) -> bool:
    """Equal to the last bit (NaN, which JSON carries as null, equal to NaN)."""
    a, b = (math.nan if v is None else v for v in (a, b))
    return bool(a == b or (math.isnan(a) and math.isnan(b)))


async def test_first_answers_with_an_empty_numba_cache_equal_the_compiled_engine(tmp_path: Path) -> None:
    write_goog_csv(tmp_path / "market")
    env = server_env(tmp_path / "data", NT_DATA_DIR=str(tmp_path / "market")) | {
        "NUMBA_CACHE_DIR": str(tmp_path / "empty-numba-cache")  # as right after pip install
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=120) as client:
        backtest = await client.call_tool("run_backtest", {"strategy": "rsi_reversion", "symbol": "GOOG"})
        optimized = await client.call_tool(
            "optimize_strategy",
            {"strategy": "sma_crossover", "symbol": "GOOG", "param_grid": {"fast": [5, 10, 20], "slow": [30, 60]}},
        )
    assert not backtest.is_error and not optimized.is_error
    bars = goog_bars()
    ours = run_strategy(bars, "rsi_reversion", {}, BacktestConfig())
    metrics = backtest.structured_content["metrics"]
    assert metrics["final_equity"] == ours.metrics.final_equity
    assert _same(metrics["sharpe"], ours.metrics.sharpe)
    assert backtest.structured_content["trade_count"] == len(ours.trades)
    train = bars.slice(0, int(len(bars) * 0.7))
    sweep = {(row["fast"], row["slow"]): row for row in sweep_sma_crossover(train, [5, 10, 20], [30, 60]).table()}
    for ranked in optimized.structured_content["top"]:
        expected = sweep[(ranked["params"]["fast"], ranked["params"]["slow"])]
        assert ranked["in_sample"]["final_equity"] == expected["final_equity"]
        assert _same(ranked["in_sample"]["sharpe"], expected["sharpe"])
