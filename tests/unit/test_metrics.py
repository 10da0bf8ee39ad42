"""Each metric on a tiny hand-computed series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nt_mcp.domain.backtest import metrics as m

DAY = 86_400 * 10**9
EQ = np.array([100.0, 110.0, 99.0, 121.0])
TS = np.arange(4, dtype=np.int64) * DAY + 19_723 * DAY  # 2024-01-01 (Mon) .. 01-04, no weekend


def test_drawdown_and_its_duration() -> None:
    path = m.equity_path(EQ, TS)  # drawdown [0, 0, 0.1, 0]
    assert path.peak == 121.0
    assert path.max_drawdown == pytest.approx(-0.1)
    # from the high at bar 1 to recovery at bar 3
    assert (path.max_drawdown_duration_bars, path.max_drawdown_duration_days) == (2, 2.0)


def test_no_drawdown_and_a_drawdown_still_open_at_the_end() -> None:
    rising = m.equity_path(np.array([1.0, 2.0, 3.0]), TS[:3])
    assert (rising.max_drawdown, rising.max_drawdown_duration_bars, rising.max_drawdown_duration_days) == (0.0, 0, 0.0)
    open_dd = m.equity_path(np.array([100.0, 120.0, 90.0, 60.0]), TS)  # high at bar 1, never recovered
    assert open_dd.max_drawdown == pytest.approx(-0.5)
    assert (open_dd.max_drawdown_duration_bars, open_dd.max_drawdown_duration_days) == (2, 2.0)


def test_risk_metrics_by_hand() -> None:
    r = np.array([0.1, -0.1, 121 / 99 - 1])
    g = (1.1 * 0.9 * 121 / 99) ** (1 / 3) - 1
    annual, vol, sharpe, sortino, cagr = m.risk_metrics(EQ, TS)
    assert annual == pytest.approx((1 + g) ** 252 - 1)
    expected_vol = math.sqrt((np.var(r, ddof=1) + (1 + g) ** 2) ** 252 - (1 + g) ** 504)
    assert vol == pytest.approx(expected_vol)
    assert sharpe == pytest.approx(annual / expected_vol)
    assert sortino == pytest.approx(annual / (math.sqrt(0.01 / 3) * math.sqrt(252)))
    assert cagr == pytest.approx(1.21 ** (365.25 / 3) - 1)


def test_weekends_switch_annualisation_to_365_days() -> None:
    ts = np.arange(14, dtype=np.int64) * DAY
    assert m.period_ends(ts)[1] == 365
    weekdays = ts[((ts // DAY) + 3) % 7 < 5]
    assert m.period_ends(weekdays)[1] == 252


def test_intraday_bars_are_resampled_to_the_last_bar_of_each_day() -> None:
    ts = np.array([0, 3600, 7200, 86_400, 90_000], dtype=np.int64) * 10**9
    ends, _ = m.period_ends(ts)
    assert ends.tolist() == [2, 4]


def test_trade_metrics() -> None:
    pnl = np.array([10.0, -5.0, 20.0, -5.0])
    ret = np.array([0.1, -0.05, 0.2, -0.05])
    win, best, worst, avg, pf, expectancy = m.trade_metrics(pnl, ret)
    assert win == 0.5
    assert (best, worst) == (0.2, -0.05)
    assert avg == pytest.approx((1.1 * 0.95 * 1.2 * 0.95) ** 0.25 - 1)
    assert pf == pytest.approx(0.3 / 0.1)
    assert expectancy == pytest.approx(0.05)
    assert all(math.isnan(x) for x in m.trade_metrics(np.empty(0), np.empty(0)))


def test_exposure_counts_entry_to_exit_inclusive_and_open_trades_to_the_end() -> None:
    assert m.exposure(10, np.array([1, 6]), np.array([3, -1])) == pytest.approx(0.7)


def test_compute_metrics_totals_and_buy_and_hold() -> None:
    close = np.array([50.0, 40.0, 60.0, 80.0])
    out = m.compute_metrics(
        EQ,
        TS,
        close,
        entry_bars=np.array([0]),
        exit_bars=np.array([3]),
        pnl=np.array([21.0]),
        returns=np.array([0.21]),
        commissions=np.array([0.0]),
        first_trading_bar=1,
    )
    assert out.total_return == pytest.approx(0.21)
    assert out.buy_and_hold_return == pytest.approx(1.0)  # from close[1] = 40 to 80
    assert out.calmar == pytest.approx(out.annual_return / 0.1)
    assert (out.n_trades, out.peak_equity, out.exposure) == (1, 121.0, 1.0)
    assert out.periods_per_year == m.period_ends(TS)[1]
