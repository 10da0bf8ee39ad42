"""The simulation's loop without protective exits gives the numbers of the general loop: a run with
exits set so far away that they never fire (the general loop) equals the same run without exits
(the specialised loop), trade for trade and bar for bar, for every sizing, with costs, shorts,
reversals, cancelled orders, ruin and close_at_end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nt_mcp.domain.backtest import BacktestConfig, BacktestResult, run_backtest
from nt_mcp.domain.backtest.warmup import warm_up_bars
from nt_mcp.domain.strategies import STRATEGIES, run_strategy
from tests.unit.conftest import make_bars

NAN = float("nan")
NEVER = {"take_profit": 99.0}  # +9,900 % for a long, below zero for a short: never reached

CONFIGS = {
    "all-in": BacktestConfig(),
    "fractional-costs": BacktestConfig(whole_units=False, commission_pct=0.002, commission_fixed=2.0, slippage_bps=7),
    "quantity": BacktestConfig(sizing="quantity", size=60.0, commission_fixed=1.0),
    "cash-close-at-end": BacktestConfig(sizing="cash", size=3_000.0, close_at_end=True, slippage_bps=3),
}


def _assert_same(a: BacktestResult, b: BacktestResult) -> None:
    assert np.array_equal(a.equity, b.equity)
    for column in ("entry_bar", "exit_bar", "entry_price", "exit_price", "size", "commission", "exit_reason"):
        assert np.array_equal(getattr(a.trades, column), getattr(b.trades, column), equal_nan=True), column
    assert a.cancelled_orders == b.cancelled_orders
    assert a.metrics.as_dict().keys() == b.metrics.as_dict().keys()
    for key, value in a.metrics.as_dict().items():
        assert np.array_equal(value, b.metrics.as_dict()[key], equal_nan=True), key


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("strategy", ["sma_crossover", "momentum", "rsi_reversion"])
def test_the_loop_without_exits_equals_the_general_loop(strategy: str, config: str) -> None:
    bars = warm_up_bars(3_000)
    params = STRATEGIES[strategy].validate({})
    if "allow_short" in params:
        params["allow_short"] = True
    plain = run_strategy(bars, strategy, params, CONFIGS[config])
    general = run_strategy(bars, strategy, params, dataclasses.replace(CONFIGS[config], **NEVER))
    assert len(plain.trades) > 10
    _assert_same(plain, general)


def test_ruin_cancelled_orders_and_reversals_on_both_loops() -> None:
    bars = make_bars([100, 100, 250, 300, 50.0, 60.0])
    fractional = BacktestConfig(cash=1000, whole_units=False)
    for signals in ([-1, NAN, NAN, NAN, NAN, NAN], [1, -1, 1, 0, -1, NAN], [1, 1, -1, -1, 0, 1]):
        general = run_backtest(bars, signals, dataclasses.replace(fractional, **NEVER))
        _assert_same(run_backtest(bars, signals, fractional), general)
    expensive = BacktestConfig(cash=50.0)  # not one unit at 100: every entry is cancelled
    result = run_backtest(bars, [1, NAN, -1, NAN, 1, NAN], expensive)
    assert result.cancelled_orders == 3 and len(result.trades) == 0
    _assert_same(result, run_backtest(bars, [1, NAN, -1, NAN, 1, NAN], dataclasses.replace(expensive, **NEVER)))
