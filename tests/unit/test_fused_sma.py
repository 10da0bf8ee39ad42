"""The one-pass SMA crossover backtest (`fused_sma.sma_crossover_backtest`) decides every crossover as the
compensated averages of `sma_crossover_signal` do, bit for bit, including near ties built to defeat its
plain sums, and ``run_strategy`` through it gives the two-step path's equity, trades and metrics exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nt_mcp.domain.backtest import BacktestConfig, BacktestResult, fused_sma, run_backtest
from nt_mcp.domain.backtest.warmup import warm_up_bars
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.jit import python_twin
from nt_mcp.domain.strategies import STRATEGIES, run_strategy
from nt_mcp.domain.strategies.indicators import sma_crossover_signal
from tests.unit.test_backtest_parity import goog_bars

CONFIGS = {
    "all-in": BacktestConfig(),
    "costs-slippage": BacktestConfig(commission_pct=0.002, commission_fixed=2.0, slippage_bps=7),
    "cash-close-at-end": BacktestConfig(sizing="cash", size=2_500.0, close_at_end=True),
    "quantity": BacktestConfig(sizing="quantity", size=3.0, cash=1_000.0),
}


def _fused(close: np.ndarray[Any, Any], fast: int, slow: int, down: float) -> tuple[np.ndarray[Any, Any], int, Any]:
    """The fused kernel's signals and how many bars its exact sums ran over."""
    n = close.shape[0]
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    signals = np.full(n, np.nan)
    out = fused_sma.sma_crossover_backtest(
        close, close, ts, fast, slow, down, 1e6, 0, 1.0, True, 0.0, 0.0, 0.0, False, np.empty(n), signals
    )
    return signals, int(out[6]), out


def _reference(close: np.ndarray[Any, Any], fast: int, slow: int, down: float) -> np.ndarray[Any, Any]:
    out = np.empty(close.shape[0])
    sma_crossover_signal(close, fast, slow, down, out)
    return out


def _same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def _near_ties(n: int, seed: int) -> dict[str, np.ndarray[Any, Any]]:
    """Series on which the two averages are equal in exact arithmetic, or within an ulp or two of each
    other, for long stretches: only the compensated sums' rounding decides the crossovers."""
    rng = np.random.default_rng(seed)
    base = 100.0 + 0.1 * np.sin(np.arange(n) * 2 * np.pi / 10)  # period 10: both windows average ~100
    ulps = np.spacing(100.0) * rng.integers(-2, 3, n)
    steps = np.repeat(100.0 + rng.integers(-3, 4, n // 50 + 1) * 0.01, 50)[:n]  # flat stretches of 50 bars
    return {
        "period-10-sine": base,
        "sine-plus-ulps": base + ulps,
        "flat-stretches": steps,
        "flat-plus-ulps": steps + ulps,
        "constant": np.full(n, 42.125),
        "one-ulp-walk": 1.0 + np.cumsum(ulps) / 100.0,
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_near_ties_take_the_exact_sums_and_give_their_signals(seed: int) -> None:
    ran_exact = 0
    for name, close in _near_ties(6_000, seed).items():
        for fast, slow in ((10, 30), (5, 20), (3, 7), (1, 2)):
            for down in (0.0, -1.0):
                signals, kahan_bars, _ = _fused(close, fast, slow, down)
                assert _same(signals, _reference(close, fast, slow, down)), (name, fast, slow, down)
                ran_exact += kahan_bars
    assert ran_exact > 0  # the adversarial series did reach the exact path


def test_random_walks_decide_from_the_plain_sums_alone() -> None:
    rng = np.random.default_rng(7)
    for scale in (1e-3, 1.0, 1e6):
        close = scale * 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, 20_000)))
        for fast, slow in ((10, 30), (2, 500), (49, 50)):
            signals, kahan_bars, _ = _fused(close, fast, slow, -1.0)
            assert _same(signals, _reference(close, fast, slow, -1.0))
            assert kahan_bars == 0  # no near tie within the error bound on an ordinary series


def test_blocks_and_re_anchoring_over_long_series() -> None:
    """Over several blocks (re-anchored plain sums), on a walk with a trend and on one with a crash."""
    rng = np.random.default_rng(3)
    trend = 50.0 + np.cumsum(rng.normal(0.01, 0.3, 30_000))
    crash = np.concatenate((np.full(10_000, 1e4), np.full(10_000, 1e-2))) * np.exp(rng.normal(0, 1e-3, 20_000))
    for close in (trend, crash):
        for fast, slow in ((10, 30), (100, 300)):
            signals, _, _ = _fused(close, fast, slow, 0.0)
            assert _same(signals, _reference(close, fast, slow, 0.0))


def test_the_python_twin_gives_the_same_signals_and_equity() -> None:
    close = _near_ties(3_000, 5)["flat-plus-ulps"]
    n = close.shape[0]
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    results = []
    for kernel in (fused_sma.sma_crossover_backtest, python_twin(fused_sma.sma_crossover_backtest)):
        signals = np.full(n, np.nan)
        equity = np.empty(n)
        out = kernel(close, close, ts, 5, 20, -1.0, 1e4, 0, 1.0, True, 0.001, 0.0, 0.0, False, equity, signals)
        results.append((signals, equity, out[0], out[1], out[5]))
    for a, b in zip(results[0], results[1], strict=True):
        assert _same(a, b)


def _two_step(bars: Bars, params: dict[str, Any], config: BacktestConfig) -> BacktestResult:
    out = STRATEGIES["sma_crossover"].run(bars, params)
    return run_backtest(bars, out.signals, config, first_trading_bar=out.warmup)


def _assert_identical(a: BacktestResult, b: BacktestResult) -> None:
    assert _same(a.equity, b.equity)
    for column in ("entry_bar", "exit_bar", "entry_price", "exit_price", "size", "commission", "pnl", "exit_reason"):
        assert _same(getattr(a.trades, column), getattr(b.trades, column)), column
    assert a.cancelled_orders == b.cancelled_orders
    for key, value in a.metrics.as_dict().items():
        assert _same(value, b.metrics.as_dict()[key]), key


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("allow_short", [False, True])
def test_run_strategy_equals_signals_then_backtest(config: str, allow_short: bool) -> None:
    walk = warm_up_bars(5_000)
    for bars in (goog_bars(), walk):
        for fast, slow in ((10, 30), (3, 8)):
            params = {"fast": fast, "slow": slow, "allow_short": allow_short}
            fused = run_strategy(bars, "sma_crossover", params, CONFIGS[config])
            assert len(fused.trades) > 3
            _assert_identical(fused, _two_step(bars, params, CONFIGS[config]))


def test_a_signal_every_bar_overflows_the_event_list_and_runs_again_with_room_for_all() -> None:
    """The event list has room for a signal on 2 bars in 3; a series that crosses on every bar (fast 1, slow 2
    on a saw tooth) fills it, and the pass runs again with room for one a bar: the same result."""
    n = 2_000
    close = np.where(np.arange(n) % 2 == 0, 100.0, 101.0) + np.arange(n) * 1e-3
    _, _, count, _ = fused_sma.crossover_events(close, 1, 2, -1.0, np.empty(0), 2 * n // 3 + 64)
    assert count == -1  # overflowed
    _, _, count, _ = fused_sma.crossover_events(close, 1, 2, -1.0, np.empty(0), n - 1)
    assert count == n - 2  # every bar from bar 2 on signals
    signals, _, _ = _fused(close, 1, 2, -1.0)
    assert _same(signals, _reference(close, 1, 2, -1.0))
    ts = np.datetime64("2021-01-04", "ns") + np.arange(n) * np.timedelta64(1, "h")
    bars = Bars(ts, close, close * 1.01, close * 0.99, close, np.ones(n))
    for allow_short in (False, True):
        params = {"fast": 1, "slow": 2, "allow_short": allow_short}
        config = CONFIGS["costs-slippage"]
        fused = run_strategy(bars, "sma_crossover", params, config)
        assert len(fused.trades) >= n // 2 - 2
        _assert_identical(fused, _two_step(bars, params, config))


def test_ruin_on_the_fused_path() -> None:
    # a down-cross opens a short, then the price jumps past twice the entry
    close = np.concatenate((np.linspace(100, 110, 30), np.linspace(110, 90, 30), np.full(20, 500.0)))
    n = close.shape[0]
    ts = np.datetime64("2021-01-04", "ns") + np.arange(n) * np.timedelta64(1, "h")
    bars = Bars(ts, close, close * 1.01, close * 0.99, close, np.ones(n))
    params = {"fast": 3, "slow": 10, "allow_short": True}
    config = BacktestConfig()
    fused = run_strategy(bars, "sma_crossover", params, config)
    assert fused.equity[-1] == 0.0 and fused.trades.exit_reason[-1] == 6  # ruined
    _assert_identical(fused, _two_step(bars, params, config))


def test_stops_still_take_the_general_loop() -> None:
    bars = goog_bars()
    params = {"fast": 10, "slow": 30, "allow_short": True}
    config = BacktestConfig(stop_loss=0.03, trailing_stop=0.05)
    result = run_strategy(bars, "sma_crossover", params, config)
    _assert_identical(result, _two_step(bars, params, config))
    assert {"stop_loss", "trailing_stop"} & {t.exit_reason for t in result.trades}
