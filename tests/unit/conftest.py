from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nt_mcp.domain.bars import Bars


def make_bars(
    close: Sequence[float],
    open_: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
) -> Bars:
    """Daily bars from 2024-01-01 (every calendar day). Missing open/high/low default to the
    close / the max / the min of open and close."""
    c = np.asarray(close, dtype=float)
    o = c.copy() if open_ is None else np.asarray(open_, dtype=float)
    h = np.maximum(o, c) if high is None else np.asarray(high, dtype=float)
    lo = np.minimum(o, c) if low is None else np.asarray(low, dtype=float)
    ts = np.datetime64("2024-01-01", "ns") + np.arange(len(c)) * np.timedelta64(1, "D")
    return Bars(ts, o, h, lo, c, np.ones(len(c)))
