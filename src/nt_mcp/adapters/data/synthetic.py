"""Seeded synthetic OHLCV bars: geometric Brownian motion, deterministic per (symbol, seed).

Model: closes follow ``C[i] = C[i-1] * exp((mu - sigma^2 / 2) * dt + sigma * sqrt(dt) * Z)``, with
``mu`` the annual drift (default 0.08), ``sigma`` the annual volatility (default 0.20) and ``dt``
the bar length in years, counting a year as 252 weekdays of 24 hours (intraday bars run around
the clock on weekdays; daily bars sit at midnight UTC on weekdays). Each open is the previous
close moved by a small gap (``0.25 * sigma * sqrt(dt) * Z``); high and low extend beyond
``max/min(open, close)`` by half-normal noise of scale ``0.5 * sigma * sqrt(dt)``; volume is
log-normal around 1,000,000 shares per day, pro rata. The generator's seed is the first 8 bytes
of ``sha256(f"{symbol}|{seed}")``, so the same arguments always give the same bars.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError

TIMEFRAMES: dict[str, int] = {
    "1Min": 60,
    "5Min": 300,
    "15Min": 900,
    "1Hour": 3_600,
    "1Day": 86_400,
}
_NS = 10**9
_DAY_NS = 86_400 * _NS
_YEAR_SECONDS = 252 * 86_400
MAX_BARS = 20_000_000


def _to_ns(name: str, value: datetime | str) -> int:
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DomainValueError(name, f"is not an ISO 8601 date or time: {value!r}") from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return int(np.datetime64(value, "ns").view(np.int64))


def _seed(symbol: str, seed: int) -> int:
    digest = hashlib.sha256(f"{symbol}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _timestamps(start_ns: int, end_ns: int, step_s: int) -> np.ndarray:
    step = step_s * _NS
    first = -(-start_ns // step) * step  # align to the bar grid
    count = (end_ns - first) // step + 1
    if count > MAX_BARS * 7 // 5:
        raise DomainValueError("end", f"the range holds more than {MAX_BARS} bars at this timeframe")
    ts = first + step * np.arange(max(count, 0), dtype=np.int64)
    weekday = ((ts // _DAY_NS) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return ts[weekday < 5]


def generate_bars(
    symbol: str,
    start: datetime | str,
    end: datetime | str,
    timeframe: str = "1Day",
    *,
    seed: int = 0,
    drift: float = 0.08,
    volatility: float = 0.20,
    start_price: float = 100.0,
) -> Bars:
    """Synthetic bars for ``symbol`` from ``start`` to ``end`` inclusive (UTC; aware datetimes are
    converted) at ``timeframe`` (one of :data:`TIMEFRAMES`). Weekdays only."""
    if timeframe not in TIMEFRAMES:
        raise DomainValueError("timeframe", f"must be one of {list(TIMEFRAMES)}, got {timeframe!r}")
    if not symbol:
        raise DomainValueError("symbol", "must not be empty")
    if not (math.isfinite(volatility) and 0 < volatility < 5):
        raise DomainValueError("volatility", f"must be in (0, 5), got {volatility}")
    if not (math.isfinite(drift) and -1 < drift < 1):
        raise DomainValueError("drift", f"must be in (-1, 1), got {drift}")
    if not (math.isfinite(start_price) and start_price > 0):
        raise DomainValueError("start_price", f"must be positive, got {start_price}")
    start_ns, end_ns = _to_ns("start", start), _to_ns("end", end)
    if end_ns < start_ns:
        raise DomainValueError("end", "must not be before start")
    step_s = TIMEFRAMES[timeframe]
    ts = _timestamps(start_ns, end_ns, step_s)
    n = ts.shape[0]
    if n == 0:
        raise DomainValueError("start", "the range holds no weekday bar at this timeframe")
    rng = np.random.default_rng(_seed(symbol, seed))
    dt = step_s / _YEAR_SECONDS
    scale = volatility * math.sqrt(dt)
    log_ret = (drift - volatility**2 / 2) * dt + scale * rng.standard_normal(n)
    close = start_price * np.exp(np.cumsum(log_ret))
    prev = np.empty(n)
    prev[0] = start_price
    prev[1:] = close[:-1]
    open_ = prev * np.exp(0.25 * scale * rng.standard_normal(n))
    high = np.maximum(open_, close) * np.exp(0.5 * scale * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.5 * scale * np.abs(rng.standard_normal(n)))
    volume = np.round(1e6 * step_s / 86_400 * np.exp(0.3 * rng.standard_normal(n)))
    return Bars(ts.view("datetime64[ns]"), open_, high, low, close, volume)
