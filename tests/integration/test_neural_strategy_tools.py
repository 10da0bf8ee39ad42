"""The neural_forecast strategy through run_backtest, optimize_strategy and execute_strategy (real MCP
client in memory): the same numbers as the domain on the same bars, small grids, a dry-run plan from the
strategy's last signal, and bad parameters named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.strategies import STRATEGIES, run_strategy
from nt_mcp.server.app import build_server
from nt_mcp.services.strategy_executor import current_direction
from nt_mcp.tools.services import Services
from tests.integration.test_backtesting_tools import goog_bars, write_goog_csv
from tests.results import error_of

SMALL = {"lookback": 10, "horizon": 2, "train_window": 150, "refit_every": 250, "hidden_units": 16, "max_iter": 40}


@pytest.fixture
async def goog(storage_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    write_goog_csv(tmp_path / "market")
    services = await Services.start(storage_settings.model_copy(update={"data_dir": tmp_path / "market"}))
    try:
        yield services
    finally:
        await services.close()


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def test_backtest_and_small_grid_on_goog(goog: Services) -> None:
    async with Client(build_server(goog)) as client:
        report = _ok(
            await client.call_tool("run_backtest", {"strategy": "neural_forecast", "symbol": "GOOG", "params": SMALL})
        )
        grid = _ok(
            await client.call_tool(
                "optimize_strategy",
                {"strategy": "neural_forecast", "symbol": "GOOG", "params": SMALL,
                 "param_grid": {"threshold": [0.0, 0.01]}, "top_n": 2},
            )
        )  # fmt: skip
        big = await client.call_tool(
            "optimize_strategy",
            {
                "strategy": "neural_forecast",
                "symbol": "GOOG",
                "param_grid": {"threshold": [0, 0.01, 0.02], "seed": [1, 2, 3]},
            },
        )
        bad = await client.call_tool(
            "run_backtest", {"strategy": "neural_forecast", "symbol": "GOOG", "params": SMALL | {"horizon": 10}}
        )
    ours = run_strategy(goog_bars(), "neural_forecast", SMALL, BacktestConfig())
    assert report["metrics"]["final_equity"] == ours.metrics.final_equity
    assert report["trade_count"] == len(ours.trades) > 0
    assert report["first_trade"]["entry_bar"] > 150 + 2 + 10 - 1  # nothing traded during the warm-up
    assert grid["evaluated"] == 2 and grid["method"] == "loop" and len(grid["top"]) == 2
    assert error_of(big)["context"]["argument"] == "param_grid" and "at most 8" in error_of(big)["message"]
    error = error_of(bad)
    assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == "params.horizon"


async def test_execute_strategy_plans_from_the_last_signal(services: Services) -> None:
    args = {"strategy": "neural_forecast", "symbols": ["SPY"], "params": SMALL | {"allow_short": True},
            "lookback_bars": 400, "capital_fraction": 0.2}  # fmt: skip
    async with Client(build_server(services)) as client:
        run = _ok(await client.call_tool("execute_strategy", args))
        too_short = await client.call_tool("execute_strategy", args | {"lookback_bars": 100})
    signal = run["signals"]["SPY"]
    now = datetime.fromisoformat(signal["last_bar"].replace("Z", "+00:00")) + timedelta(hours=1)
    bars = await services.market_data.get_bars("SPY", "1Day", now - timedelta(days=400 * 7 // 5 + 4), now)
    bars = bars.slice(len(bars) - signal["bars"], len(bars))
    expected = current_direction(STRATEGIES["neural_forecast"].signals(bars, SMALL | {"allow_short": True}))
    assert signal["direction"] == expected and signal["source"] == "synthetic"
    assert run["status"] == "planned"
    assert error_of(too_short)["context"]["argument"] == "lookback_bars"
