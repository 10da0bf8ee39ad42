"""Fills, sizing, costs and protective exits of the engine, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nt_mcp.domain.backtest import BacktestConfig, Sizing, run_backtest
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from tests.unit.conftest import make_bars

NAN = math.nan
FRACTIONAL = BacktestConfig(cash=1000.0, whole_units=False)


def test_peeking_at_the_next_close_cannot_buy_before_the_move() -> None:
    # Every move happens overnight: each bar opens at its close. A signal that "knows" the next
    # close (+10 %, -9.1 %, ...) would gain 10 % per round trip if it could fill at the signal
    # bar's close (1000 -> 1331). Filled at the next open, it buys after each rise and sells after
    # each fall, losing 1 - 100/110 per round trip.
    close = np.array([100, 110, 100, 110, 100, 110, 100.0])
    bars = make_bars(close, open_=close)
    peek = np.append(np.where(close[1:] > close[:-1], 1.0, 0.0), 0.0)  # uses close[i + 1]
    result = run_backtest(bars, peek, FRACTIONAL)
    assert [t.entry_price for t in result.trades] == [110.0] * 3
    assert [t.exit_price for t in result.trades] == [100.0] * 3
    k = 100 / 110
    np.testing.assert_allclose(
        result.equity, [1000, 1000, 1000 * k, 1000 * k, 1000 * k**2, 1000 * k**2, 1000 * k**3], rtol=1e-12
    )


def test_equity_matches_an_independent_next_open_computation() -> None:
    close = np.array([10, 11, 12, 11, 13, 14, 12, 15.0])
    open_ = np.array([10, 10.5, 11.5, 11.8, 11.2, 13.5, 13.0, 12.5])
    bars = make_bars(close, open_=open_)
    signal = np.array([1, NAN, 0, 1, NAN, NAN, 0, NAN])
    result = run_backtest(bars, signal, FRACTIONAL)
    # by hand: buy at open[1]=10.5 with 1000 -> 95.238 units; sell at open[3]=11.8;
    # buy at open[4]=11.2; sell at open[7]=12.5
    units1 = 1000 / 10.5
    cash1 = units1 * 11.8
    units2 = cash1 / 11.2
    expected = [1000, units1 * 11, units1 * 12, cash1, units2 * 13, units2 * 14, units2 * 12, units2 * 12.5]
    np.testing.assert_allclose(result.equity, expected, rtol=1e-12)
    assert [t.entry_bar for t in result.trades] == [1, 4]
    assert [t.exit_bar for t in result.trades] == [3, 7]


def test_signal_on_the_last_bar_is_never_filled() -> None:
    result = run_backtest(make_bars([1, 2, 3.0]), [NAN, NAN, 1.0], FRACTIONAL)
    assert len(result.trades) == 0
    np.testing.assert_allclose(result.equity, 1000.0)


def test_short_trade_profits_when_price_falls() -> None:
    bars = make_bars([100, 100, 90, 80.0], open_=[100, 100, 95, 85])
    result = run_backtest(bars, [-1, NAN, 0, NAN], FRACTIONAL)
    (trade,) = list(result.trades)
    assert trade.size == pytest.approx(-10.0)
    assert (trade.entry_price, trade.exit_price) == (100.0, 85.0)
    assert trade.pnl == pytest.approx(150.0)
    assert trade.return_pct == pytest.approx(0.15)
    np.testing.assert_allclose(result.equity, [1000, 1000, 1100, 1150])


def test_reversal_closes_then_opens_at_the_same_open() -> None:
    bars = make_bars([100, 100, 120, 110, 100.0])
    result = run_backtest(bars, [1, NAN, -1, NAN, NAN], FRACTIONAL)
    first, second = list(result.trades)
    assert first.exit_bar == second.entry_bar == 3
    assert first.size > 0 > second.size
    assert second.exit_bar is None  # still open at the end, marked at the last close
    assert result.equity[-1] == pytest.approx(1100 + 1100 / 110 * 10)


def test_whole_units_like_backtesting_py() -> None:
    result = run_backtest(make_bars([300, 300, 300.0]), [1, NAN, NAN], BacktestConfig(cash=1000))
    assert result.trades[0].size == 3


def test_fixed_cash_and_fixed_quantity_sizing() -> None:
    bars = make_bars([300, 300, 300.0])
    by_cash = run_backtest(bars, [1, NAN, NAN], BacktestConfig(cash=1000, sizing=Sizing.CASH, size=650))
    assert by_cash.trades[0].size == 2
    too_many = run_backtest(bars, [1, NAN, NAN], BacktestConfig(cash=1000, sizing=Sizing.QUANTITY, size=4))
    assert len(too_many.trades) == 0 and too_many.cancelled_orders == 1


def test_fixed_and_percentage_commission_on_both_legs() -> None:
    bars = make_bars([100, 100, 110, 110.0])
    cfg = BacktestConfig(cash=10_000, sizing=Sizing.QUANTITY, size=10, commission_pct=0.01, commission_fixed=1)
    result = run_backtest(bars, [1, NAN, 0, NAN], cfg)
    trade = result.trades[0]
    assert trade.commission == pytest.approx((1 + 10) + (1 + 11))
    assert trade.pnl == pytest.approx(100 - 23)
    assert result.equity[-1] == pytest.approx(10_077)


def test_slippage_moves_both_fills_against_the_trader() -> None:
    bars = make_bars([100, 100, 110, 110.0])
    cfg = BacktestConfig(cash=10_000, sizing=Sizing.QUANTITY, size=1, slippage_bps=10)
    long_trade = run_backtest(bars, [1, NAN, 0, NAN], cfg).trades[0]
    assert (long_trade.entry_price, long_trade.exit_price) == pytest.approx((100.1, 109.89))
    short_trade = run_backtest(bars, [-1, NAN, 0, NAN], cfg).trades[0]
    assert (short_trade.entry_price, short_trade.exit_price) == pytest.approx((99.9, 110.11))


def _one_long(bars: Bars, **cfg: float) -> tuple[float, int, str]:
    config = BacktestConfig(cash=1000, whole_units=False, **cfg)  # type: ignore[arg-type]
    result = run_backtest(bars, [1] + [NAN] * (len(bars) - 1), config)
    t = result.trades[0]
    assert t.exit_price is not None and t.exit_bar is not None
    return t.exit_price, t.exit_bar, t.exit_reason


def test_stop_loss_hit_inside_the_bar_fills_at_the_stop() -> None:
    bars = make_bars([100, 100, 98, 97], open_=[100, 100, 99, 98], low=[100, 99, 94, 96])
    assert _one_long(bars, stop_loss=0.05) == (95.0, 2, "stop_loss")


def test_stop_loss_gapped_through_fills_at_the_open() -> None:
    bars = make_bars([100, 100, 91, 97], open_=[100, 100, 90, 92])
    assert _one_long(bars, stop_loss=0.05) == (90.0, 2, "stop_loss")


def test_take_profit_and_pessimistic_same_bar_rule() -> None:
    up = make_bars([100, 100, 105, 105], open_=[100, 100, 101, 105], high=[100, 101, 112, 105])
    assert _one_long(up, take_profit=0.10) == pytest.approx((110.0, 2, "take_profit"))
    both = make_bars(
        [100, 100, 100, 100], open_=[100, 100, 100, 100], high=[100, 101, 112, 100], low=[100, 99, 94, 100]
    )
    assert _one_long(both, stop_loss=0.05, take_profit=0.10) == pytest.approx((95.0, 2, "stop_loss"))


def test_trailing_stop_follows_the_high_of_previous_bars() -> None:
    bars = make_bars(
        [100, 100, 118, 110, 100],
        open_=[100, 100, 101, 117, 105],
        high=[100, 100, 120, 117, 105],
        low=[100, 100, 100, 107, 100],
    )
    # after bar 2 the best high is 120 -> level 108; bar 3 low 107 -> out at 108
    assert _one_long(bars, trailing_stop=0.10) == pytest.approx((108.0, 3, "trailing_stop"))


def test_per_trade_stop_distance_from_the_signal_bar() -> None:
    bars = make_bars([100, 100, 100, 100], low=[100, 100, 96, 100])
    result = run_backtest(bars, [1, NAN, NAN, NAN], FRACTIONAL, stop_distance=[3.0, 50, 50, 50])
    assert (result.trades[0].exit_price, result.trades[0].exit_reason) == (97.0, "stop_loss")


def test_close_at_end_closes_at_the_last_close() -> None:
    bars = make_bars([100, 100, 120.0])
    open_end = run_backtest(bars, [1, NAN, NAN], FRACTIONAL)
    at_end = BacktestConfig(cash=1000, whole_units=False, close_at_end=True)
    closed = run_backtest(bars, [1, NAN, NAN], at_end)
    assert open_end.trades[0].exit_bar is None and open_end.metrics.n_trades == 0
    assert closed.trades[0].exit_reason == "end" and closed.metrics.n_trades == 1
    assert closed.equity[-1] == open_end.equity[-1] == pytest.approx(1200)


def test_ruin_stops_the_run_at_zero_equity() -> None:
    bars = make_bars([100, 100, 250, 300, 50.0])
    result = run_backtest(bars, [-1, NAN, NAN, NAN, NAN], FRACTIONAL)
    np.testing.assert_array_equal(result.equity[2:], 0.0)
    assert result.trades[0].exit_reason == "ruin"


def test_bad_signal_values_are_rejected() -> None:
    with pytest.raises(DomainValueError) as err:
        run_backtest(make_bars([1, 2, 3.0]), [0, 0.5, 0])
    assert err.value.argument == "signals" and "bar 1" in err.value.message
    with pytest.raises(DomainValueError) as err:
        run_backtest(make_bars([1, 2, 3.0]), [0, 1])
    assert err.value.argument == "signals"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"cash": 0}, "cash"),
        ({"size": 1.5}, "size"),
        ({"commission_pct": -0.1}, "commission_pct"),
        ({"stop_loss": 1.5}, "stop_loss"),
        ({"sizing": "quantity", "size": 2.5}, "size"),
    ],
)
def test_config_validation_names_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(DomainValueError) as err:
        BacktestConfig(**kwargs)  # type: ignore[arg-type]
    assert err.value.argument == argument


@pytest.mark.parametrize(
    ("field", "bad"),
    [("high", [1.0, 0.5]), ("close", [1.0, math.nan]), ("timestamps", None)],
)
def test_bars_validation(field: str, bad: list[float] | None) -> None:
    ts = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    cols = {name: [1.0, 1.0] for name in ("open", "high", "low", "close", "volume")}
    if bad is None:
        ts = ts[::-1]
    else:
        cols[field] = bad
    with pytest.raises(DomainValueError) as err:
        Bars(ts, **{k: np.array(v) for k, v in cols.items()})  # type: ignore[arg-type]
    assert err.value.argument == field


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[Bars, np.ndarray, BacktestConfig]:  # type: ignore[type-arg]
    n = draw(st.integers(3, 40))
    steps = draw(st.lists(st.floats(-0.2, 0.2), min_size=n, max_size=n))
    close = 100 * np.exp(np.cumsum(steps))
    gaps = np.array(draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(gaps)
    wick = np.array(draw(st.lists(st.floats(0, 0.05), min_size=n, max_size=n)))
    bars = make_bars(
        close, open_=open_, high=np.maximum(open_, close) * (1 + wick), low=np.minimum(open_, close) * (1 - wick)
    )
    signal = np.array(draw(st.lists(st.sampled_from([NAN, 1.0, 0.0, -1.0]), min_size=n, max_size=n)))
    cfg = BacktestConfig(
        cash=10_000,
        whole_units=draw(st.booleans()),
        commission_pct=draw(st.sampled_from([0.0, 0.001, 0.01])),
        commission_fixed=draw(st.sampled_from([0.0, 2.0])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0])),
        stop_loss=draw(st.sampled_from([None, 0.03])),
        take_profit=draw(st.sampled_from([None, 0.05])),
        trailing_stop=draw(st.sampled_from([None, 0.04])),
    )
    return bars, signal, cfg


@settings(max_examples=300, deadline=None)
@given(_scenario())
def test_equity_is_cash_plus_position_value_at_every_bar(
    case: tuple[Bars, np.ndarray, BacktestConfig],  # type: ignore[type-arg]
) -> None:
    bars, signal, cfg = case
    result = run_backtest(bars, signal, cfg)
    if result.equity.min() <= 0:
        return  # ruin: covered by its own test
    t = result.trades
    for i in range(len(bars)):
        closed = (t.exit_bar >= 0) & (t.exit_bar <= i)
        open_now = (t.entry_bar <= i) & ~closed
        entry_leg = cfg.commission_fixed + np.abs(t.size) * t.entry_price * cfg.commission_pct
        value = (
            cfg.cash
            + t.pnl[closed].sum()
            + (t.size[open_now] * (bars.close[i] - t.entry_price[open_now])).sum()
            - entry_leg[open_now].sum()
        )
        assert result.equity[i] == pytest.approx(value, rel=1e-9, abs=1e-6)
    # at most one position at a time: trades never overlap except exit bar == next entry bar
    order = np.argsort(t.entry_bar)
    exits = np.where(t.exit_bar < 0, len(bars), t.exit_bar)[order]
    assert (t.entry_bar[order][1:] >= exits[:-1]).all()
