"""Compile every kernel the tools use, by running them on small made-up bars.

`compile_kernels` runs each registered strategy (with and without protective exits) and the SMA
sweep through the same public functions the tools call, so numba compiles (or loads from its cache)
exactly the signatures real calls need: the same array layouts (read-only contiguous bars, fresh
signal arrays) and scalar types. That reaches every kernel: the strategies' indicator and signal
kernels (the SMA crossover's one-pass `sma_crossover_signal`, and `fused_sma.sma_crossover_backtest`, which
the crossover runs without protective exits), both simulation loops (the run without
protective exits takes `kernel._simulate_without_exits`, the run with them the general loop), the
metrics' passes over timestamps and equity (`metrics._day_period_ends`, `metrics._equity_path`), the
trade table and per-trade figures (`trade_figures.trade_columns`, `trade_figures.trade_figures`) and
the sweep (tests/unit/test_jit_twins.py checks that nothing compiles after it). The server runs it in
a background thread at start (`nt_mcp.server.kernel_warmup`, through `nt_mcp.domain.jit.warm_up`).
"""

from __future__ import annotations

import numpy as np

from nt_mcp.domain.backtest.config import BacktestConfig
from nt_mcp.domain.backtest.sweep import sweep_sma_crossover
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import STRATEGIES, run_strategy

WARM_UP_BARS = 300


def warm_up_bars(n: int = WARM_UP_BARS) -> Bars:
    """A seeded random walk of ``n`` daily bars: input for compiling, not data for anyone to read."""
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    days = np.datetime64("2020-01-01", "ns") + np.arange(n) * np.timedelta64(1, "D")
    return Bars(days, open_, high, low, close, np.full(n, 1e6))


def compile_kernels() -> None:
    """Call every compiled kernel once with the argument types the tools use."""
    bars = warm_up_bars()
    with_exits = BacktestConfig(stop_loss=0.05, take_profit=0.1, trailing_stop=0.05, close_at_end=True)
    for name, spec in STRATEGIES.items():
        params = spec.validate({})
        run_strategy(bars, name, params, BacktestConfig())
        run_strategy(bars, name, params, with_exits)
    sweep_sma_crossover(bars, [5, 10], [20, 30])
