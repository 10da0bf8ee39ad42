"""Our engine against backtesting.py on the GOOG daily data shipped with it: same trades, same
equity, same headline metrics, for a 10/30 SMA crossover, long only."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG

from nt_mcp.domain.backtest import BacktestConfig, BacktestResult
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import run_strategy


def _sma(values: Any, n: int) -> pd.Series:
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):  # type: ignore[misc]
    n1 = 10
    n2 = 30

    def init(self) -> None:
        self.sma1 = self.I(_sma, self.data.Close, self.n1)
        self.sma2 = self.I(_sma, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


def goog_bars() -> Bars:
    return Bars(
        GOOG.index.values,
        GOOG.Open.values,
        GOOG.High.values,
        GOOG.Low.values,
        GOOG.Close.values,
        GOOG.Volume.values.astype(float),
    )


@pytest.fixture(scope="module", params=[0.0, 0.001], ids=["no-commission", "commission-0.1pct"])
def pair(request: pytest.FixtureRequest) -> tuple[pd.Series, BacktestResult]:
    commission = request.param
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open" is expected here
        theirs = Backtest(GOOG, SmaCross, cash=10_000, commission=commission).run()
    ours = run_strategy(
        goog_bars(),
        "sma_crossover",
        {"fast": 10, "slow": 30},
        BacktestConfig(cash=10_000, commission_pct=commission),
    )
    return theirs, ours


def test_same_closed_trades_bar_for_bar(pair: tuple[pd.Series, BacktestResult]) -> None:
    theirs, ours = pair
    bt = theirs["_trades"]
    closed = ours.trades.exit_bar >= 0
    assert len(bt) == int(closed.sum()) == 32
    np.testing.assert_array_equal(ours.trades.entry_bar[closed], bt["EntryBar"].to_numpy())
    np.testing.assert_array_equal(ours.trades.exit_bar[closed], bt["ExitBar"].to_numpy())
    np.testing.assert_array_equal(ours.trades.size[closed], bt["Size"].to_numpy())
    np.testing.assert_array_equal(ours.trades.entry_price[closed], bt["EntryPrice"].to_numpy())
    np.testing.assert_array_equal(ours.trades.exit_price[closed], bt["ExitPrice"].to_numpy())
    np.testing.assert_allclose(ours.trades.pnl[closed], bt["PnL"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        ours.trades.commission[closed],
        bt["Commission"].fillna(0).to_numpy() if "Commission" in bt else 0.0,
        rtol=1e-12,
        atol=1e-12,
    )


def test_position_still_open_at_end_is_reported_open(pair: tuple[pd.Series, BacktestResult]) -> None:
    _, ours = pair
    last = ours.trades[len(ours.trades) - 1]
    assert last.exit_bar is None and last.exit_price is None
    assert last.size > 0
    # marked at the last close, as backtesting.py marks its equity
    assert ours.equity[-1] == pytest.approx(ours.equity[last.entry_bar - 1] + last.pnl, rel=1e-12)


def test_same_equity_curve(pair: tuple[pd.Series, BacktestResult]) -> None:
    theirs, ours = pair
    np.testing.assert_allclose(ours.equity, theirs["_equity_curve"]["Equity"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("theirs_key", "ours_attr", "scale"),
    [
        ("Equity Final [$]", "final_equity", 1.0),
        ("Return [%]", "total_return", 100.0),
        ("Sharpe Ratio", "sharpe", 1.0),
        ("Sortino Ratio", "sortino", 1.0),
        ("Calmar Ratio", "calmar", 1.0),
        ("CAGR [%]", "cagr", 100.0),
        ("Return (Ann.) [%]", "annual_return", 100.0),
        ("Volatility (Ann.) [%]", "annual_volatility", 100.0),
        ("Max. Drawdown [%]", "max_drawdown", 100.0),
        ("Buy & Hold Return [%]", "buy_and_hold_return", 100.0),
        ("Win Rate [%]", "win_rate", 100.0),
        ("Best Trade [%]", "best_trade", 100.0),
        ("Worst Trade [%]", "worst_trade", 100.0),
        ("Avg. Trade [%]", "avg_trade", 100.0),
        ("Profit Factor", "profit_factor", 1.0),
        ("Expectancy [%]", "expectancy", 100.0),
        ("# Trades", "n_trades", 1.0),
    ],
)
def test_same_metrics(pair: tuple[pd.Series, BacktestResult], theirs_key: str, ours_attr: str, scale: float) -> None:
    theirs, ours = pair
    assert getattr(ours.metrics, ours_attr) * scale == pytest.approx(float(theirs[theirs_key]), rel=1e-9)


def test_same_max_drawdown_duration(pair: tuple[pd.Series, BacktestResult]) -> None:
    theirs, ours = pair
    assert ours.metrics.max_drawdown_duration_days == theirs["Max. Drawdown Duration"].days


def test_commission_costs_money() -> None:
    bars = goog_bars()
    free = run_strategy(bars, "sma_crossover", {"fast": 10, "slow": 30}, BacktestConfig())
    paid = run_strategy(bars, "sma_crossover", {"fast": 10, "slow": 30}, BacktestConfig(commission_pct=0.001))
    assert paid.metrics.final_equity < free.metrics.final_equity
    assert paid.metrics.total_commission > 0 == free.metrics.total_commission
