"""Simple moving average crossover."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies.spec import Param, Params, StrategySignals, StrategySpec

if TYPE_CHECKING:  # the engine (numba) loads on the first backtest, not with the strategy registry
    from nt_mcp.domain.backtest import BacktestConfig, BacktestResult


def _check(p: Params) -> None:
    if p["slow"] <= p["fast"]:
        raise DomainValueError("slow", f"must be greater than fast ({p['fast']}), got {p['slow']}")


def _compute(bars: Bars, p: Params) -> StrategySignals:
    # the compiled indicators (numba) load on the first computation, not with the strategy registry
    from nt_mcp.domain.jit import compiled
    from nt_mcp.domain.strategies.indicators import sma_crossover_signal

    out = np.empty(len(bars))
    warmup = compiled(sma_crossover_signal)(bars.close, p["fast"], p["slow"], -1.0 if p["allow_short"] else 0.0, out)
    return StrategySignals(out, int(warmup))


_NO_SIGNALS = np.empty(0)


def _fused_backtest(bars: Bars, p: Params, config: BacktestConfig) -> BacktestResult:
    """Signals, simulation and equity path in one pass (`fused_sma.sma_crossover_backtest`); ``config``
    has no protective exit. The same result as ``run_backtest`` on `_compute`'s signals."""
    from nt_mcp.domain.backtest import fused_sma
    from nt_mcp.domain.backtest.engine import TradeTable, result_of_trades
    from nt_mcp.domain.backtest.metrics import EquityPath
    from nt_mcp.domain.jit import compiled

    cash, sizing, size, whole_units, c_pct, c_fixed, slippage, _, _, _, close_at_end = config.kernel_args()
    equity = np.empty(len(bars), dtype=np.float64)
    ints, floats, _, cancelled, warmup, path, _ = compiled(fused_sma.sma_crossover_backtest)(
        bars.open,
        bars.close,
        bars.ts_ns,
        p["fast"],
        p["slow"],
        -1.0 if p["allow_short"] else 0.0,
        cash,
        sizing,
        size,
        whole_units,
        c_pct,
        c_fixed,
        slippage,
        close_at_end,
        equity,
        _NO_SIGNALS,
    )
    trades = TradeTable.from_columns(ints, floats, bars.timestamps)
    return result_of_trades(bars, equity, trades, int(cancelled), config, int(warmup), EquityPath.from_kernel(*path))


SPEC = StrategySpec(
    name="sma_crossover",
    description=(
        "Go long when the fast simple moving average of the close crosses above the slow one "
        "(fast[i-1] < slow[i-1] and fast[i] > slow[i], decided at bar i's close, filled at bar i+1's "
        "open); exit on the opposite cross, or reverse to short if allow_short."
    ),
    params=(
        Param("fast", int, 10, "bars in the fast average", 1, 10_000),
        Param("slow", int, 30, "bars in the slow average; must exceed fast", 2, 10_000),
        Param("allow_short", bool, False, "go short on a downward cross instead of going flat"),
    ),
    compute=_compute,
    check=_check,
    fused_backtest=_fused_backtest,
)
