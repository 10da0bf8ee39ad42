"""Closing prices of one or several symbols from a market-data source, aligned on common bars.

The analytics tools read the latest ``bars`` closes up to ``end``. For sources that generate or fetch by
date range (synthetic, Alpaca) the range asked for is ``bars`` bars of ``timeframe`` back from ``end``,
widened for weekends (x 7/5) and a margin; files are read whole up to ``end``. Several symbols are
aligned on the timestamps they all have (an inner join): a bar missing for one symbol is dropped for all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from nt_mcp.adapters.data.market import MarketData
from nt_mcp.adapters.data.synthetic import TIMEFRAMES
from nt_mcp.domain.bars import Bars
from nt_mcp.errors import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SYNTHETIC_DETAIL = (
    "SYNTHETIC: seeded geometric Brownian motion (drift 8 %/yr, volatility 20 %/yr), deterministic; "
    "not real market prices"
)


@dataclass(frozen=True)
class Series:
    """Aligned closes (rows = bars, columns = symbols) and where they came from."""

    source: str
    symbols: list[str]
    timeframe: str
    timestamps: npt.NDArray[np.int64]  # ns since the epoch, UTC
    closes: npt.NDArray[np.float64]
    dropped: int  # bars of some symbol dropped because another symbol lacked them

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def detail(self) -> str:
        if self.synthetic:
            return SYNTHETIC_DETAIL
        if self.source == "files":
            return "files <SYMBOL>.csv/.parquet in NT_DATA_DIR"
        return f"{self.source} historical bars (split-adjusted)"

    def moment(self, index: int) -> datetime:
        ns = int(self.timestamps[index])
        return datetime.fromtimestamp(ns // 10**9, UTC) + timedelta(microseconds=(ns % 10**9) // 1000)


def _range(market: MarketData, timeframe: str, bars: int, end: datetime | None) -> tuple[datetime, datetime]:
    end_u = end or datetime.now(UTC)
    if market.source == "files":
        return EPOCH, end_u
    seconds = TIMEFRAMES[timeframe] * (bars + 2) * 7 / 5 + 10 * 86_400
    start = max(EPOCH, end_u - timedelta(seconds=seconds))
    return start, end_u


async def load_series(
    market: MarketData,
    symbols: list[str],
    timeframe: str,
    bars: int,
    end: datetime | None = None,
    min_bars: int = 2,
    argument: str = "symbols",
    symbols_argument: str = "symbols",
) -> Series:
    """The latest ``bars`` aligned closes of ``symbols`` (fewer when the source has fewer; fewer than
    ``min_bars`` after alignment is a VALIDATION_ERROR naming ``argument``; a symbol the source does not
    have, one naming ``symbols_argument``)."""
    start, end_u = _range(market, timeframe, bars, end)
    try:
        loaded: list[Bars] = list(
            await asyncio.gather(*(market.get_bars(symbol, timeframe, start, end_u) for symbol in symbols))
        )
    except ValidationError as error:
        if error.argument in ("symbol", "symbols") and error.argument != symbols_argument:
            raise ValidationError(error.message, argument=symbols_argument) from None
        raise
    common = loaded[0].ts_ns
    for series in loaded[1:]:
        common = np.intersect1d(common, series.ts_ns, assume_unique=True)
    common = common[-bars:]
    if common.shape[0] < min_bars:
        raise ValidationError(
            f"only {common.shape[0]} {timeframe} bars{' common to all symbols' if len(symbols) > 1 else ''} "
            f"up to {end_u.date()} from the {market.source} source; at least {min_bars} are needed: load more "
            "bars (a longer range or lookback) or fewer/other symbols",
            argument=argument,
        )
    closes = np.empty((common.shape[0], len(symbols)))
    dropped = 0
    for j, series in enumerate(loaded):
        index = np.searchsorted(series.ts_ns, common)
        closes[:, j] = series.close[index]
        dropped += int(min(series.ts_ns.shape[0], bars) - common.shape[0])
    return Series(market.source, list(symbols), timeframe, common, closes, max(0, dropped))
