"""Momentum: trade the sign of the rate of change."""

from __future__ import annotations

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies.spec import Param, Params, StrategySignals, StrategySpec, warmup_of


def _compute(bars: Bars, p: Params) -> StrategySignals:
    # the compiled indicators (numba) load on the first computation, not with the strategy registry
    from nt_mcp.domain.strategies.indicators import rate_of_change

    roc = rate_of_change(bars.close, p["lookback"])
    out = np.full(len(bars), np.nan)
    out[roc > p["threshold"]] = 1.0
    out[roc < -p["threshold"]] = -1.0 if p["allow_short"] else 0.0
    return StrategySignals(out, warmup_of(roc))


SPEC = StrategySpec(
    name="momentum",
    description=(
        "Rate of change roc[i] = close[i] / close[i-lookback] - 1, at bar i's close. Go (or stay) long "
        "when roc > threshold; when roc < -threshold exit, or go short if allow_short; otherwise hold."
    ),
    params=(
        Param("lookback", int, 20, "bars between the two closes compared", 1, 10_000),
        Param("threshold", float, 0.0, "rate of change (fraction, 0.02 = 2 %) to act on", 0.0, 10.0),
        Param("allow_short", bool, False, "go short below -threshold instead of going flat"),
    ),
    compute=_compute,
)
