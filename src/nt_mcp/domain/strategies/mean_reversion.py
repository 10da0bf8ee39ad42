"""Mean reversion on the z-score of the close against its rolling mean."""

from __future__ import annotations

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies.spec import Param, Params, StrategySignals, StrategySpec, warmup_of


def _check(p: Params) -> None:
    if p["exit"] >= p["entry"]:
        raise DomainValueError("exit", f"must be below entry ({p['entry']}), got {p['exit']}")


def _compute(bars: Bars, p: Params) -> StrategySignals:
    # the compiled indicators (numba) load on the first computation, not with the strategy registry
    from nt_mcp.domain.strategies.indicators import rolling_zscore

    z = rolling_zscore(bars.close, p["window"])
    out = np.full(len(bars), np.nan)
    out[np.abs(z) <= p["exit"]] = 0.0
    out[z <= -p["entry"]] = 1.0
    out[z >= p["entry"]] = -1.0 if p["allow_short"] else 0.0
    return StrategySignals(out, warmup_of(z))


SPEC = StrategySpec(
    name="mean_reversion",
    description=(
        "z[i] = (close[i] - mean) / std over the last `window` closes (sample std). When z <= -entry "
        "go long; when z >= entry go short (or flat if allow_short is false); when |z| <= exit go "
        "flat; otherwise hold."
    ),
    params=(
        Param("window", int, 20, "bars in the rolling mean and standard deviation", 2, 10_000),
        Param("entry", float, 2.0, "|z| at or beyond which to enter", 0.0, 100.0),
        Param("exit", float, 0.5, "|z| at or within which to exit; below entry", 0.0, 100.0),
        Param("allow_short", bool, True, "go short when z >= entry"),
    ),
    compute=_compute,
    check=_check,
)
