"""Seeded synthetic OHLCV bars: one geometric Brownian motion per (symbol, seed), anchored in time.

The price of a symbol at a given minute does not depend on the range asked for: every request
reads the same path. It runs on weekdays, around the clock (UTC), from `ANCHOR` (1970-01-05), and
closes at ``start_price`` (default 100) on `REFERENCE_DAY` (2020-01-01), so recent prices stay
near that level.

- Daily closes: ``C[k] = C[k-1] * exp((mu - sigma^2/2) * dt + sigma * sqrt(dt) * Z[k])`` for the
  k-th weekday since the anchor, ``mu`` the annual drift (default 0.08), ``sigma`` the annual
  volatility (default 0.20), ``dt = 1/252`` (a year counts 252 weekdays of 24 hours). The daily
  open is the previous close moved by a small gap (``0.25 * sigma * sqrt(dt) * Z``); high and low
  extend beyond ``max/min(open, close)`` by half-normal noise of scale ``0.5 * sigma * sqrt(dt)``
  (they are drawn per day, not taken from the minute bars); volume is log-normal around 1,000,000.
- Minute bars of day k: a Brownian bridge from the day's open to ``C[k]`` over its 1,440 minutes,
  so the last minute's close is the daily close. Minute opens, highs, lows and volumes follow the
  same rules at the minute scale. 5Min, 15Min and 1Hour bars aggregate the minute bars (first open,
  max high, min low, last close, summed volume).

Random numbers come from NumPy generators seeded with ``sha256(f"{symbol}|{seed}")`` (and the day's
index for minute bars), so the same arguments always give the same bars. Prices are not real.

Work and memory follow the answer, not the range: ``last=N`` generates only the days that hold the
latest N bars of the range (30 years of 1-minute bars asked for with ``last=100`` generate about a
week), and intraday bars are generated `CHUNK_DAYS` days at a time straight into the result arrays,
so a call needs the result (48 bytes a bar) plus a few MB, never several copies of the range.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

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
_MINUTES = 1_440
MAX_BARS = 20_000_000
CHUNK_DAYS = 64  # intraday generation step: 64 days of minute draws are ~30 MB of temporaries
ANCHOR = datetime(1970, 1, 5)  # a Monday: weekday index 0 of every synthetic path
_ANCHOR_NS = int(np.datetime64(ANCHOR, "ns").view(np.int64))
REFERENCE_DAY = datetime(2020, 1, 1)  # the close on this day is start_price


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


def _weekday_index(day_ns: np.ndarray) -> np.ndarray:
    """Index of each weekday (midnight timestamps) counted in weekdays since `ANCHOR`."""
    days = (day_ns - _ANCHOR_NS) // _DAY_NS
    weeks, rest = np.divmod(days, 7)
    return weeks * 5 + np.minimum(rest, 5)


_REFERENCE_INDEX = int(_weekday_index(np.array([int(np.datetime64(REFERENCE_DAY, "ns").view(np.int64))]))[0])


class _Path:
    """The one path of a (symbol, seed, drift, volatility, start_price)."""

    def __init__(self, symbol: str, seed: int, drift: float, volatility: float, start_price: float) -> None:
        self.key = _seed(symbol, seed)
        self.drift, self.volatility, self.start_price = drift, volatility, start_price

    def daily(self, last_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per weekday 0..last_index: previous close, close, and the day's five normal draws."""
        dt = 86_400 / _YEAR_SECONDS
        count = max(last_index, _REFERENCE_INDEX) + 1
        draws = np.random.default_rng(self.key).standard_normal((count, 5))
        log_ret = (self.drift - self.volatility**2 / 2) * dt + self.volatility * math.sqrt(dt) * draws[:, 0]
        level = np.cumsum(log_ret)
        level -= level[_REFERENCE_INDEX]  # the close on REFERENCE_DAY is start_price
        close = self.start_price * np.exp(level)
        prev = close * np.exp(-log_ret)
        return prev, close, draws

    def daily_bars(self, days: np.ndarray) -> tuple[np.ndarray, ...]:
        index = _weekday_index(days)
        prev, close, draws = self.daily(int(index[-1]))
        prev, close, z = prev[index], close[index], draws[index]
        scale = self.volatility * math.sqrt(86_400 / _YEAR_SECONDS)
        open_ = prev * np.exp(0.25 * scale * z[:, 1])
        high = np.maximum(open_, close) * np.exp(0.5 * scale * np.abs(z[:, 2]))
        low = np.minimum(open_, close) * np.exp(-0.5 * scale * np.abs(z[:, 3]))
        volume = np.round(1e6 * np.exp(0.3 * z[:, 4]))
        return open_, high, low, close, volume

    def minute_bars(self, days: np.ndarray) -> tuple[np.ndarray, ...]:
        """The 1,440 minute bars of each day in ``days``, as (len(days), 1440) arrays."""
        index = _weekday_index(days)
        day_open, _, _, day_close, _ = self.daily_bars(days)
        dt = 60 / _YEAR_SECONDS
        scale = self.volatility * math.sqrt(dt)
        shape = (len(days), _MINUTES)
        z = np.empty((5, *shape))
        for row, k in enumerate(index):
            z[:, row, :] = np.random.default_rng([self.key, int(k)]).standard_normal((5, _MINUTES))
        step = (self.drift - self.volatility**2 / 2) * dt + scale * z[0]
        # Brownian bridge: shift each day's steps so they end exactly at the daily close
        target = np.log(day_close / day_open)
        step += ((target - step.sum(axis=1)) / _MINUTES)[:, None]
        close = day_open[:, None] * np.exp(np.cumsum(step, axis=1))
        prev = np.concatenate((day_open[:, None], close[:, :-1]), axis=1)
        open_ = prev * np.exp(0.25 * scale * z[1])
        open_[:, 0] = day_open
        high = np.maximum(open_, close) * np.exp(0.5 * scale * np.abs(z[2]))
        low = np.minimum(open_, close) * np.exp(-0.5 * scale * np.abs(z[3]))
        volume = np.round(1e6 / _MINUTES * np.exp(0.3 * z[4]))
        return open_, high, low, close, volume


def _aggregate(minutes: tuple[np.ndarray, ...], per_bar: int) -> tuple[np.ndarray, ...]:
    """Minute bars (days, 1440) -> bars of ``per_bar`` minutes, flattened in time order."""
    open_, high, low, close, volume = (a.reshape(a.shape[0], _MINUTES // per_bar, per_bar) for a in minutes)
    return (
        open_[:, :, 0].ravel(),
        high.max(axis=2).ravel(),
        low.min(axis=2).ravel(),
        close[:, :, -1].ravel(),
        volume.sum(axis=2).ravel(),
    )


def _latest_start_ns(end_ns: int, step_s: int, count: int) -> int:
    """A start from which ``[start, end]`` surely holds the latest ``count`` weekday bars (and not
    many more): whole weeks of bars, plus one week for the weekend and grid alignment."""
    per_week = 5 * 86_400 // step_s
    weeks = -(-count // per_week) + 1
    return end_ns - weeks * 7 * _DAY_NS


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
    last: int | None = None,
) -> Bars:
    """Synthetic bars for ``symbol`` from ``start`` to ``end`` inclusive (UTC; aware datetimes are
    converted) at ``timeframe`` (one of :data:`TIMEFRAMES`). Weekdays only. With ``last``, only the
    latest ``last`` bars of that range (and only they are generated)."""
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
    if last is not None and last < 1:
        raise DomainValueError("limit", f"must be at least 1, got {last}")
    start_ns, end_ns = _to_ns("start", start), _to_ns("end", end)
    if end_ns < start_ns:
        raise DomainValueError("end", "must not be before start")
    step_s = TIMEFRAMES[timeframe]
    if last is not None:
        start_ns = max(start_ns, _latest_start_ns(end_ns, step_s, last))
    ts = _timestamps(start_ns, end_ns, step_s)
    if last is not None:
        ts = ts[-last:]
    n = ts.shape[0]
    if n == 0:
        raise DomainValueError("start", "the range holds no weekday bar at this timeframe")
    if ts[0] < _ANCHOR_NS:
        raise DomainValueError("start", f"synthetic data starts on {ANCHOR.date().isoformat()}")
    path = _Path(symbol, seed, drift, volatility, start_price)
    if timeframe == "1Day":
        return Bars(ts.view("datetime64[ns]"), *path.daily_bars(ts))
    return Bars(ts.view("datetime64[ns]"), *_intraday(path, ts, step_s))


def _intraday(path: _Path, ts: np.ndarray, step_s: int) -> tuple[np.ndarray, ...]:
    """OHLCV at ``ts`` (intraday grid times, weekdays), generated `CHUNK_DAYS` days at a time."""
    n = ts.shape[0]
    out = tuple(np.empty(n) for _ in range(5))
    days = np.unique(ts - ts % _DAY_NS)
    per_bar = step_s // 60
    offsets = np.arange(0, _DAY_NS, step_s * _NS, dtype=np.int64)
    filled = 0
    for first in range(0, days.shape[0], CHUNK_DAYS):
        chunk = days[first : first + CHUNK_DAYS]
        bars = _aggregate(path.minute_bars(chunk), per_bar)
        chunk_ts = (chunk[:, None] + offsets[None, :]).ravel()
        keep = (chunk_ts >= ts[0]) & (chunk_ts <= ts[-1])
        count = int(keep.sum())
        for target, values in zip(out, bars, strict=True):
            target[filled : filled + count] = values[keep]
        filled += count
    assert filled == n, (filled, n)
    return out


def price_at(symbol: str, moment: datetime, *, seed: int = 0) -> tuple[float, datetime]:
    """The close of the last trading minute finished at or before ``moment`` (weekends: Friday's last
    minute, 23:59 UTC), and that minute, labelled by its start as minute bars are. The price and time
    a synthetic quote reports at ``moment``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    bars = generate_bars(symbol, moment - timedelta(days=4), moment - timedelta(minutes=1), "1Min", seed=seed, last=1)
    last = bars.timestamps[-1].astype("datetime64[us]").astype(datetime)
    return float(bars.close[-1]), last.replace(tzinfo=UTC)
