"""RSI reversion: buy oversold, sell overbought."""

from __future__ import annotations

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies.spec import Param, Params, StrategySignals, StrategySpec, warmup_of


def _check(p: Params) -> None:
    if p["upper"] <= p["lower"]:
        raise DomainValueError("upper", f"must be above lower ({p['lower']}), got {p['upper']}")


def _compute(bars: Bars, p: Params) -> StrategySignals:
    # the compiled indicators (numba) load on the first computation, not with the strategy registry
    from nt_mcp.domain.strategies.indicators import rsi

    r = rsi(bars.close, p["period"])
    out = np.full(len(bars), np.nan)
    out[r < p["lower"]] = 1.0
    out[r > p["upper"]] = -1.0 if p["allow_short"] else 0.0
    return StrategySignals(out, warmup_of(r))


SPEC = StrategySpec(
    name="rsi_reversion",
    description=(
        "Wilder RSI over `period` bars at bar i's close. Below `lower` (oversold) go long; above "
        "`upper` (overbought) exit, or go short if allow_short; otherwise hold."
    ),
    params=(
        Param("period", int, 14, "bars in Wilder's RSI", 2, 10_000),
        Param("lower", float, 30.0, "oversold level", 0.0, 100.0),
        Param("upper", float, 70.0, "overbought level; above lower", 0.0, 100.0),
        Param("allow_short", bool, False, "go short when overbought instead of going flat"),
    ),
    compute=_compute,
    check=_check,
)
