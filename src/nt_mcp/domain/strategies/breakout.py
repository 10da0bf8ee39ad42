"""Donchian channel breakout with an ATR stop."""

from __future__ import annotations

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies.spec import Param, Params, StrategySignals, StrategySpec, warmup_of


def _compute(bars: Bars, p: Params) -> StrategySignals:
    # the compiled indicators (numba) load on the first computation, not with the strategy registry
    from nt_mcp.domain.jit import compiled
    from nt_mcp.domain.strategies.indicators import atr, rolling_max_min

    upper, lower = compiled(rolling_max_min)(bars.high, bars.low, p["channel"])
    out = np.full(len(bars), np.nan)
    out[bars.close > upper] = 1.0
    out[bars.close < lower] = -1.0 if p["allow_short"] else 0.0
    stop = None
    indicators = [upper]
    if p["atr_mult"] > 0:
        a = atr(bars.high, bars.low, bars.close, p["atr_period"])
        stop = p["atr_mult"] * a
        indicators.append(a)
    return StrategySignals(out, warmup_of(*indicators), stop)


SPEC = StrategySpec(
    name="breakout",
    description=(
        "Donchian breakout: when the close is above the highest high of the previous `channel` bars go "
        "long; below their lowest low exit (or go short if allow_short). Each trade gets a stop "
        "atr_mult x ATR(atr_period) (Wilder) away from its entry price, ATR taken at the signal bar; "
        "the engine checks it against every bar's low/high (atr_mult 0 disables the stop)."
    ),
    params=(
        Param("channel", int, 20, "bars in the Donchian channel (excluding the current bar)", 1, 10_000),
        Param("atr_period", int, 14, "bars in the average true range", 1, 10_000),
        Param("atr_mult", float, 2.0, "stop distance in ATRs; 0 for no stop", 0.0, 100.0),
        Param("allow_short", bool, False, "go short on a downside breakout instead of going flat"),
    ),
    compute=_compute,
)
