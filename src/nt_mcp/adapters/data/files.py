"""Bars from local files: ``<data_dir>/<SYMBOL>.csv`` or ``<data_dir>/<SYMBOL>.parquet``.

Columns ``timestamp, open, high, low, close, volume`` (names case-insensitive; others ignored).
Timestamps are ISO 8601 (an offset or ``Z`` is converted to UTC; no offset means UTC) or epoch
numbers: seconds, or milliseconds when above 1e11. Rows must already be in strictly increasing
time order, with ``low <= open, close <= high``; the loader reports the file, column and row of the
first problem instead of guessing.
Parquet needs ``pyarrow`` (optional). Rows in messages are numbered like CSV lines (header = 1).
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_MS_THRESHOLD = 1e11


def find_file(data_dir: Path | str, symbol: str) -> Path:
    """The CSV or Parquet file for ``symbol`` (CSV first; exact name, then upper case)."""
    if not _SYMBOL.match(symbol) or ".." in symbol:
        raise DomainValueError("symbol", f"{symbol!r} is not a valid symbol (letters, digits, . _ -)")
    base = Path(data_dir)
    for name in dict.fromkeys((symbol, symbol.upper())):
        for ext in (".csv", ".parquet"):
            path = base / f"{name}{ext}"
            if path.is_file():
                return path
    raise DomainValueError("symbol", f"no {symbol}.csv or {symbol}.parquet in {base}")


def _parse_time(text: str, path: Path, row: int) -> int:
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        seconds = number / 1000 if abs(number) > _MS_THRESHOLD else number
        return round(seconds * 1e6) * 1000
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DomainValueError(
            "timestamp", f"{path.name} row {row}: {text!r} is neither ISO 8601 nor epoch seconds/ms"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return int(np.datetime64(moment, "ns").view(np.int64))


def _read_csv(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DomainValueError("timestamp", f"{path.name} is empty")
        names = [h.strip().lower() for h in header]
        cols: dict[str, list[str]] = {name: [] for name in names}
        for line_no, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(names):
                raise DomainValueError(
                    "file", f"{path.name} line {line_no}: {len(record)} fields, header has {len(names)}"
                )
            for name, value in zip(names, record, strict=True):
                cols[name].append(value)
    return names, cols


def _read_parquet(path: Path) -> tuple[list[str], dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise DomainValueError(
            "symbol", f"{path.name} is Parquet; reading it needs pyarrow (pip install pyarrow)"
        ) from None
    table = pq.read_table(path)
    names = [n.lower() for n in table.column_names]
    return names, {n.lower(): table.column(n).to_numpy(zero_copy_only=False) for n in table.column_names}


def _timestamps(values: Any, path: Path) -> npt.NDArray[np.int64]:
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").view(np.int64)
    if np.issubdtype(arr.dtype, np.number):
        sec = np.where(np.abs(arr) > _MS_THRESHOLD, arr / 1000.0, arr.astype(np.float64))
        return np.round(sec * 1e6).astype(np.int64) * 1000
    return np.array([_parse_time(str(v), path, i + 2) for i, v in enumerate(arr)], dtype=np.int64)


def _floats(name: str, values: Any, path: Path) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise DomainValueError(name, f"{path.name} row {i + 2}: {v!r} is not a number") from None
        raise
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argmax(bad)) + 2
        raise DomainValueError(name, f"{path.name} row {row}: missing or non-finite value")
    return arr


def load_bars(
    data_dir: Path | str,
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Bars:
    """Read the file for ``symbol`` and keep bars with ``start <= timestamp <= end`` (UTC)."""
    path = find_file(data_dir, symbol)
    names, cols = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DomainValueError(missing[0], f"{path.name} lacks column(s) {missing}; it has {names}")
    ts = _timestamps(cols["timestamp"], path)
    if ts.shape[0] == 0:
        raise DomainValueError("timestamp", f"{path.name} has no rows")
    steps = np.diff(ts)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 3
        kind = "duplicate" if steps[row - 3] == 0 else "out-of-order"
        raise DomainValueError(
            "timestamp", f"{path.name} row {row}: {kind} timestamp (timestamps must strictly increase)"
        )
    prices = {c: _floats(c, cols[c], path) for c in COLUMNS[1:]}
    bad_hl = prices["high"] < prices["low"]
    if bad_hl.any():
        raise DomainValueError("high", f"{path.name} row {int(np.argmax(bad_hl)) + 2}: high below low")
    for name in ("open", "close"):  # a fill at the open, or a mark at the close, must lie within the bar
        outside = (prices[name] > prices["high"]) | (prices[name] < prices["low"])
        if outside.any():
            i = int(np.argmax(outside))
            raise DomainValueError(
                name,
                f"{path.name} row {i + 2}: {name} {prices[name][i]:g} lies outside [low {prices['low'][i]:g}, "
                f"high {prices['high'][i]:g}]",
            )
    keep = np.ones(ts.shape[0], dtype=bool)
    if start is not None:
        keep &= ts >= _bound(start)
    if end is not None:
        keep &= ts <= _bound(end)
    if not keep.any():
        raise DomainValueError("start", f"{path.name} has no bars between {start} and {end}")
    return Bars(ts[keep].view("datetime64[ns]"), *(prices[c][keep] for c in COLUMNS[1:]))


def _bound(moment: datetime) -> int:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return int(np.datetime64(moment, "ns").view(np.int64))
