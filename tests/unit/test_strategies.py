"""Each strategy's rule on a small crafted series, parameter validation, and the sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.backtest.sweep import SmaCache, plan_sweep, sweep_pairs, sweep_sma_crossover
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies import STRATEGIES, get_strategy, run_strategy
from nt_mcp.domain.strategies.indicators import atr, rsi, sma
from tests.unit.conftest import make_bars

NAN = math.nan


def _same(a: np.ndarray, b: list[float]) -> None:  # type: ignore[type-arg]
    np.testing.assert_array_equal(a, np.array(b, dtype=float))


def test_sma_crossover_signals_on_the_cross_bar_only() -> None:
    bars = make_bars([5, 4, 3, 2, 3, 4, 5, 4, 3, 2])
    # sma2: -, 4.5, 3.5, 2.5, 2.5, 3.5, 4.5, 4.5, 3.5, 2.5 ; sma3: -, -, 4, 3, 2.67, 3, 4, 4.33, 4, 3
    sig = STRATEGIES["sma_crossover"].signals(bars, {"fast": 2, "slow": 3})
    _same(sig, [NAN, NAN, NAN, NAN, NAN, 1, NAN, NAN, 0, NAN])
    short = STRATEGIES["sma_crossover"].signals(bars, {"fast": 2, "slow": 3, "allow_short": True})
    assert short[8] == -1


def test_momentum_thresholds() -> None:
    bars = make_bars([100, 110, 111, 100, 100])
    sig = STRATEGIES["momentum"].signals(bars, {"lookback": 1, "threshold": 0.05})
    _same(sig, [NAN, 1, NAN, 0, NAN])
    short = STRATEGIES["momentum"].signals(bars, {"lookback": 1, "threshold": 0.05, "allow_short": True})
    assert short[3] == -1


def test_mean_reversion_enters_on_stretch_and_exits_near_the_mean() -> None:
    bars = make_bars([10, 10, 10, 10, 7, 10, 10, 13])
    sig = STRATEGIES["mean_reversion"].signals(bars, {"window": 4, "entry": 1.4, "exit": 0.5})
    # bar 4: window 10,10,10,7: mean 9.25, std 1.5 -> z = -1.5 -> long
    # bar 5: 10,10,7,10 -> z = 0.5 -> exit; bar 7: 10,7,10,13 -> mean 10, std 2.45 -> z = 1.22 -> hold
    _same(sig, [NAN, NAN, NAN, NAN, 1, 0, 0, NAN])


def test_breakout_uses_the_previous_bars_channel_and_gives_an_atr_stop() -> None:
    close = [10, 11, 10, 12, 9, 10.0]
    bars = make_bars(close, high=[10.5, 11.5, 10.5, 12.5, 10.0, 10.5], low=[9.5, 10.5, 9.5, 11.5, 8.5, 9.5])
    out = STRATEGIES["breakout"].run(bars, {"channel": 2, "atr_period": 2, "atr_mult": 2.0})
    # bar 3: close 12 > max(high[1..2]) = 11.5 -> long; bar 4: close 9 < min(low[2..3]) = 9.5 -> exit
    _same(out.signals, [NAN, NAN, NAN, 1, 0, NAN])
    assert out.stop_distance is not None
    np.testing.assert_allclose(out.stop_distance, 2 * atr(bars.high, bars.low, bars.close, 2))


def test_breakout_stop_exits_inside_the_bar() -> None:
    bars = make_bars(
        [10, 11, 10, 12, 12, 12],
        open_=[10, 11, 10, 12, 12, 12],
        high=[10.5, 11.5, 10.5, 12.5, 12.5, 12.5],
        low=[9.5, 10.5, 9.5, 11.5, 5.0, 11.5],
    )
    result = run_strategy(
        bars, "breakout", {"channel": 2, "atr_period": 2, "atr_mult": 1.0}, BacktestConfig(whole_units=False)
    )
    trade = result.trades[0]
    assert trade.exit_reason == "stop_loss" and trade.exit_bar == 4
    assert trade.exit_price == pytest.approx(12 - atr(bars.high, bars.low, bars.close, 2)[3])


def test_rsi_wilder_and_the_rule() -> None:
    close = np.array([10, 11, 12, 11, 9, 8, 9, 12.0])
    r = rsi(close, 2)
    # changes: +1, +1, -1, -2, -1, +1, +3; seed avg gain/loss over the first 2: 1 / 0 -> RSI 100
    assert r[2] == 100
    gain, loss = 1.0, 0.0
    for ch in [-1, -2, -1, 1, 3]:
        gain += (max(ch, 0) - gain) / 2
        loss += (max(-ch, 0) - loss) / 2
    assert r[-1] == pytest.approx(100 - 100 / (1 + gain / loss))
    sig = STRATEGIES["rsi_reversion"].signals(make_bars(close), {"period": 2, "lower": 30, "upper": 70})
    expected = np.where(r < 30, 1.0, np.where(r > 70, 0.0, NAN))
    np.testing.assert_array_equal(sig, expected)
    assert sig[4] == 1 and sig[2] == 0


@pytest.mark.parametrize(
    ("name", "params", "argument"),
    [
        ("sma_crossover", {"fast": 30, "slow": 10}, "slow"),
        ("sma_crossover", {"fast": 10, "slow": 10}, "slow"),
        ("sma_crossover", {"fast": 0}, "fast"),
        ("sma_crossover", {"fast": 2.5}, "fast"),
        ("sma_crossover", {"fast": "10"}, "fast"),
        ("sma_crossover", {"speed": 3}, "speed"),
        ("momentum", {"threshold": -0.1}, "threshold"),
        ("mean_reversion", {"entry": 1.0, "exit": 1.5}, "exit"),
        ("breakout", {"atr_mult": -1}, "atr_mult"),
        ("rsi_reversion", {"lower": 60, "upper": 40}, "upper"),
        ("rsi_reversion", {"allow_short": 1}, "allow_short"),
    ],
)
def test_parameter_validation_names_the_parameter(name: str, params: dict[str, object], argument: str) -> None:
    with pytest.raises(DomainValueError) as err:
        STRATEGIES[name].validate(params)
    assert err.value.argument == argument


def test_unknown_strategy() -> None:
    with pytest.raises(DomainValueError) as err:
        get_strategy("nope")
    assert err.value.argument == "strategy" and "sma_crossover" in err.value.message


def test_every_strategy_describes_itself_and_runs_on_defaults() -> None:
    bars = make_bars(100 + 10 * np.sin(np.arange(300) / 7.0))
    small = {"neural_forecast": {"lookback": 10, "train_window": 100, "hidden_units": 8}}  # defaults warm up 564 bars
    for name, spec in STRATEGIES.items():
        info = spec.describe()
        assert info["name"] == name and info["description"] and info["parameters"]
        result = run_strategy(bars, name, small.get(name))
        assert len(result.trades) > 0, name


def test_sma_values() -> None:
    np.testing.assert_allclose(sma(np.array([1.0, 2, 3, 4]), 2), [NAN, 1.5, 2.5, 3.5])


def test_sweep_rows_equal_single_backtests() -> None:
    bars = make_bars(100 + 10 * np.sin(np.arange(400) / 9.0) + np.arange(400) * 0.01)
    cfg = BacktestConfig(commission_pct=0.001)
    sweep = sweep_sma_crossover(bars, [3, 5, 30], [10, 20], cfg)
    pairs = list(zip(sweep.fast.tolist(), sweep.slow.tolist(), strict=True))
    assert pairs == [(3, 10), (3, 20), (5, 10), (5, 20)]
    for row in sweep.table():
        single = run_strategy(bars, "sma_crossover", {"fast": row["fast"], "slow": row["slow"]}, cfg).metrics
        assert row["final_equity"] == single.final_equity
        assert row["n_trades"] == single.n_trades
        assert row["sharpe"] == pytest.approx(single.sharpe, rel=1e-12, nan_ok=True)
    assert sweep.best("final_equity")["final_equity"] == max(r["final_equity"] for r in sweep.table())


def test_sweep_chunks_share_averages_within_the_cache_bound() -> None:
    """Chunks run with a shared SmaCache give the rows of chunks run alone; the cache keeps at most
    its byte bound of averages (here two windows' worth) and computes the rest per chunk."""
    bars = make_bars(100 + 10 * np.sin(np.arange(400) / 9.0) + np.arange(400) * 0.01)
    chunks = plan_sweep([3, 5, 8], [10, 20, 40], len(bars), min_chunks=3)
    assert len(chunks) == 3
    cache = SmaCache(bars, max_bytes=2 * 8 * len(bars))
    shared = [row for chunk in chunks for row in sweep_pairs(bars, chunk, cache=cache, allow_short=True).table()]
    alone = [row for chunk in chunks for row in sweep_pairs(bars, chunk, allow_short=True).table()]
    assert len(shared) == 9
    for ours, theirs in zip(shared, alone, strict=True):
        assert all(np.array_equal(ours[k], theirs[k], equal_nan=True) for k in ours), (ours, theirs)
    assert len(cache._entries) == 2
    average, first = cache.get(40)
    np.testing.assert_array_equal(average, sma(bars.close, 40))
    assert first == 39


def test_sweep_rejects_bad_windows() -> None:
    bars = make_bars(np.arange(1, 50, dtype=float))
    with pytest.raises(DomainValueError) as err:
        sweep_sma_crossover(bars, [0, 5], [10])
    assert err.value.argument == "fasts"
    with pytest.raises(DomainValueError) as err:
        sweep_sma_crossover(bars, [20], [10])
    assert err.value.argument == "slows"
