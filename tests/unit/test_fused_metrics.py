"""The compiled metrics (one pass over the timestamps, one over the equity curve) give the figures of
the plain-NumPy formulas they replaced (tests/reference_metrics.py) to 1e-12, on real backtests of
every strategy, long and short, with and without protective exits, on daily, intraday and weekly bars."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nt_mcp.domain.backtest import BacktestConfig, BacktestResult, compute_metrics
from nt_mcp.domain.backtest import metrics as m
from nt_mcp.domain.backtest.warmup import warm_up_bars
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import STRATEGIES, run_strategy
from tests import reference_metrics as ref
from tests.unit.test_backtest_parity import goog_bars

CONFIGS = {
    "all-in": BacktestConfig(),
    "stops-and-costs": BacktestConfig(
        commission_pct=0.001, commission_fixed=1.0, slippage_bps=5, stop_loss=0.03, take_profit=0.06, trailing_stop=0.04
    ),
    "cash-close-at-end": BacktestConfig(sizing="cash", size=2_500.0, close_at_end=True, risk_free_rate=0.02),
}


def _spaced(bars: Bars, step_ns: int) -> Bars:
    """``bars`` re-stamped every ``step_ns`` from 2020-01-06 (a Monday)."""
    ts = np.datetime64("2020-01-06", "ns") + np.arange(len(bars)) * np.timedelta64(step_ns, "ns")
    return Bars(ts, bars.open, bars.high, bars.low, bars.close, bars.volume)


def _series() -> dict[str, Bars]:
    walk = warm_up_bars(2_000)
    return {
        "goog-daily-weekdays": goog_bars(),
        "walk-every-day": walk,
        "walk-hourly": _spaced(walk, 3_600 * 10**9),
        "walk-weekly": _spaced(walk, 7 * 86_400 * 10**9),
    }


def _reference(result: BacktestResult, bars: Bars, warmup: int, rf: float) -> dict[str, float | int]:
    t = result.trades
    return ref.compute_metrics(
        result.equity,
        bars.ts_ns,
        bars.close,
        entry_bars=t.entry_bar,
        exit_bars=t.exit_bar,
        pnl=t.pnl,
        returns=t.return_pct,
        commissions=t.commission,
        first_trading_bar=warmup,
        risk_free_rate=rf,
    ).as_dict()


def _close(ours: float | int, theirs: float | int) -> bool:
    if isinstance(ours, float) and math.isnan(ours):
        return isinstance(theirs, float) and math.isnan(theirs)
    return ours == theirs or abs(ours - theirs) <= 1e-12 * max(1.0, abs(theirs))


@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES) - {"neural_forecast"}))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_fused_metrics_equal_the_numpy_reference(strategy: str, config: str) -> None:
    cfg = CONFIGS[config]
    for name, bars in _series().items():
        spec = STRATEGIES[strategy]
        params = spec.validate({})
        if "allow_short" in params:
            params["allow_short"] = True
        out = spec.run(bars, params)
        result = run_strategy(bars, strategy, params, cfg)
        assert len(result.trades) > 0, f"{strategy} on {name}: no trade, a weak comparison"
        if "allow_short" in params:
            assert (result.trades.size < 0).any(), f"{strategy} on {name}: no short trade"
        ours = result.metrics.as_dict()
        theirs = _reference(result, bars, out.warmup, cfg.risk_free_rate)
        assert ours.keys() == theirs.keys()
        bad = {k: (ours[k], theirs[k]) for k in ours if not _close(ours[k], theirs[k])}
        assert not bad, f"{strategy} on {name}: {bad}"


def test_stops_fire_in_the_compared_runs() -> None:
    """The exits config really exercises stop-loss, take-profit and trailing exits."""
    result = run_strategy(goog_bars(), "sma_crossover", {"allow_short": True}, CONFIGS["stops-and-costs"])
    reasons = {t.exit_reason for t in result.trades}
    assert {"stop_loss", "take_profit", "trailing_stop"} <= reasons


def _random_curves() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    curves = []
    for trial in range(200):
        n = int(rng.integers(1, 300))
        eq = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
        if trial % 4 == 0:
            eq = np.round(eq)  # repeated highs: stretches end on exact ties
        if trial % 7 == 0 and n > 4:
            eq[n // 2 :] = 0.0  # ruin
        if trial % 13 == 0:
            eq[:] = 5.0  # flat
        curves.append(eq)
    return curves


def test_equity_path_equals_drawdown_array_formulas() -> None:
    day = 86_400 * 10**9
    for eq in _random_curves():
        ts = np.arange(eq.shape[0], dtype=np.int64) * (day // 3) + 19_000 * day
        dd = ref.drawdown(eq)
        path = m.equity_path(eq, ts)
        assert path.peak == float(eq.max())
        assert path.max_drawdown == ref.max_drawdown(dd)
        assert (path.max_drawdown_duration_bars, path.max_drawdown_duration_days) == ref.drawdown_duration(dd, ts)


def test_period_ends_equal_the_calendar_formulas() -> None:
    rng = np.random.default_rng(11)
    day = 86_400 * 10**9
    for trial in range(150):
        n = int(rng.integers(2, 400))
        step = (day // 24, day, 7 * day, 60 * 10**9, 3 * day)[trial % 5]
        ts = (np.cumsum(rng.integers(1, 3, n)) * step - 300 * day).astype(np.int64)  # some before 1970
        ends, per_year = m.period_ends(ts)
        want_ends, want_per_year = ref.period_ends(ts)
        assert ends.tolist() == want_ends.tolist() and per_year == want_per_year


def test_exposure_equals_the_bar_count_formula() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(5, 200))
        cuts = np.sort(rng.choice(n, size=2 * int(rng.integers(1, n // 2 + 1)), replace=False))
        entry, exit_ = cuts[0::2].copy(), cuts[1::2].copy()
        exit_[1::3] = entry[1::3]  # one-bar trades
        if rng.random() < 0.5:
            exit_[-1] = -1  # still open
        assert m.exposure(n, entry, exit_) == ref.exposure(n, entry, exit_)


def test_compute_metrics_with_no_trade() -> None:
    bars = warm_up_bars(50)
    eq = np.full(50, 1_000.0)
    empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0)
    kw = {"entry_bars": empty_i, "exit_bars": empty_i, "pnl": empty_f, "returns": empty_f, "commissions": empty_f}
    ours = compute_metrics(eq, bars.ts_ns, bars.close, **kw).as_dict()  # type: ignore[arg-type]
    theirs = ref.compute_metrics(eq, bars.ts_ns, bars.close, **kw).as_dict()  # type: ignore[arg-type]
    assert all(_close(ours[k], theirs[k]) for k in ours)
    assert ours["exposure"] == 0.0 and ours["n_trades"] == 0


def test_median_step_is_numpys_median() -> None:
    rng = np.random.default_rng(13)
    for _ in range(3_000):
        n = int(rng.integers(2, 102))  # odd and even step counts, up to the 100 period_ends reads
        ts = (np.cumsum(rng.integers(1, 10 ** int(rng.integers(1, 17)), n)) - 10**15).astype(np.int64)
        assert m._median_step(ts) == int(np.median(np.diff(ts)))


def test_equity_path_maps_nan_and_infinite_drawdowns_as_nan_to_num() -> None:
    for deepest in (math.nan, math.inf, -math.inf, 0.0, -0.0, 0.25):
        got = m.EquityPath.from_kernel(1.0, deepest, 3, 5, True).max_drawdown
        assert np.float64(got).view(np.int64) == np.float64(-float(np.nan_to_num(deepest))).view(np.int64)
