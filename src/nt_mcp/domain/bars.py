"""OHLCV bars: the one input every backtest reads.

Timestamps are UTC, timezone-naive ``datetime64[ns]`` (an ``int64`` array of nanoseconds since the
Unix epoch is accepted and converted). Prices and volume are ``float64``. A :class:`Bars` is
validated once on construction and its arrays are read-only views, so downstream code can trust it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.errors import DomainValueError

FloatArray = npt.NDArray[np.float64]
_T = TypeVar("_T", bound=np.generic)
_PRICE_FIELDS = ("open", "high", "low", "close", "volume")


def _as_timestamps(values: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DomainValueError("timestamps", f"must be one-dimensional, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64):
        if arr.dtype != np.dtype("datetime64[ns]"):
            arr = arr.astype("datetime64[ns]")
        if np.isnat(arr).any():
            raise DomainValueError("timestamps", "contains NaT (missing timestamps)")
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64, copy=False).view("datetime64[ns]")
    raise DomainValueError(
        "timestamps", f"must be datetime64 or int64 nanoseconds since the epoch, got dtype {arr.dtype}"
    )


def _as_float(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        arr = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DomainValueError(name, f"must be numeric: {exc}") from exc
    if arr.ndim != 1:
        raise DomainValueError(name, f"must be one-dimensional, got shape {arr.shape}")
    return arr


def _readonly(arr: npt.NDArray[_T]) -> npt.NDArray[_T]:
    view = arr.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, slots=True)
class Bars:
    """A validated series of OHLCV bars.

    Invariants (checked in ``__post_init__``, violations raise :class:`DomainValueError` naming
    the field): all arrays have the same length; at least one bar; timestamps strictly increase;
    no NaN or infinite price or volume; ``high >= low`` on every bar.
    """

    timestamps: npt.NDArray[np.datetime64]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        ts = _as_timestamps(self.timestamps)
        cols = {name: _as_float(name, getattr(self, name)) for name in _PRICE_FIELDS}
        n = ts.shape[0]
        if n == 0:
            raise DomainValueError("timestamps", "no bars: at least one bar is needed")
        for name, arr in cols.items():
            if arr.shape[0] != n:
                raise DomainValueError(name, f"has {arr.shape[0]} values but there are {n} timestamps")
            finite = np.isfinite(arr)
            if not finite.all():
                bad = int(np.argmin(finite))
                raise DomainValueError(name, f"contains NaN or infinity (first at bar {bad})")
        ns = ts.view(np.int64)
        if n > 1:
            steps = np.diff(ns)
            if (steps <= 0).any():
                bad = int(np.argmax(steps <= 0)) + 1
                kind = "duplicate" if steps[bad - 1] == 0 else "out-of-order"
                raise DomainValueError("timestamps", f"must be strictly increasing; {kind} timestamp at bar {bad}")
        low_gt_high = cols["high"] < cols["low"]
        if low_gt_high.any():
            bad = int(np.argmax(low_gt_high))
            raise DomainValueError("high", f"is below low at bar {bad}")
        object.__setattr__(self, "timestamps", _readonly(ts))
        for name, arr in cols.items():
            object.__setattr__(self, name, _readonly(arr))

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def ts_ns(self) -> npt.NDArray[np.int64]:
        """Timestamps as int64 nanoseconds since the Unix epoch (a view, no copy)."""
        return self.timestamps.view(np.int64)

    def slice(self, start: int, stop: int) -> Bars:
        """Bars ``start`` (inclusive) to ``stop`` (exclusive), by position."""
        return Bars(
            self.timestamps[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )
