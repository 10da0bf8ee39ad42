"""Where prices come from: one async `MarketData` interface and its sources.

- `SyntheticMarketData` (the zero-configuration default): the seeded GBM generator of
  `nt_mcp.adapters.data.synthetic`, labelled ``source="synthetic"``. One path per symbol, whatever
  range is asked for: the latest quote at ``t`` is the close of the last 1-minute bar finished by
  ``t`` (on a weekend, Friday's last minute), and bars end at the last bar finished by ``t``, so
  quotes, minute bars and daily bars agree. Prices are not real.
- `AlpacaMarketData`: Alpaca's market data API through alpaca-py (``NT_MARKET_DATA_SOURCE=alpaca``).

Every `Quote` names its ``source`` so a tool result can say where a price came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from nt_mcp.adapters.alpaca_common import call_alpaca
from nt_mcp.adapters.data.synthetic import TIMEFRAMES, generate_bars, price_at
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import ExternalAPIError, NotFoundError, ValidationError
from nt_mcp.infra.resilience import Upstreams


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal  # the price a market order is expected to trade near (mid, or last close)
    bid: Decimal | None
    ask: Decimal | None
    timestamp: datetime
    source: str


class MarketData(Protocol):
    source: str  # "synthetic" | "files" | "alpaca"

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars: ...
    async def latest_quote(self, symbol: str) -> Quote: ...


_ALPACA_TIMEFRAMES = {
    "1Min": TimeFrame(1, TimeFrameUnit.Minute),
    "5Min": TimeFrame(5, TimeFrameUnit.Minute),
    "15Min": TimeFrame(15, TimeFrameUnit.Minute),
    "1Hour": TimeFrame(1, TimeFrameUnit.Hour),
    "1Day": TimeFrame(1, TimeFrameUnit.Day),
}


class SyntheticMarketData:
    """Quotes from the seeded synthetic generator (see the module docstring for the exact rule)."""

    source = "synthetic"

    def __init__(self, seed: int = 0, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.seed = seed
        self.now = now

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        """The generator's bars for ``symbol``, only bars already finished at this source's clock
        (so today's daily bar never shows the day's future close); not real prices."""
        step = timedelta(seconds=TIMEFRAMES[timeframe]) if timeframe in TIMEFRAMES else timedelta(0)
        end = min(end, self.now() - step)
        try:
            return await asyncio.to_thread(generate_bars, symbol, start, end, timeframe, seed=self.seed)
        except DomainValueError as error:
            raise ValidationError(str(error), argument=error.argument) from error

    async def latest_quote(self, symbol: str) -> Quote:
        price, at = await asyncio.to_thread(price_at, symbol, self.now(), seed=self.seed)
        value = Decimal(str(round(price, 4)))
        return Quote(symbol=symbol, price=value, bid=None, ask=None, timestamp=at, source=self.source)

    async def close(self) -> None:
        return None


def to_decimal(value: Any) -> Decimal | None:
    """An upstream number as a Decimal: strings exactly, JSON floats via their shortest repr."""
    if value is None or value == "":
        return None
    return Decimal(str(value))


class AlpacaMarketData:
    """Latest quotes from Alpaca's market data API (IEX feed by default; SIP needs a subscription).

    alpaca-py is synchronous: every call runs in a worker thread (`asyncio.to_thread`)."""

    source = "alpaca"

    def __init__(self, client: Any, feed: str = "iex", upstreams: Upstreams | None = None) -> None:
        self.client = client  # an alpaca.data.historical.StockHistoricalDataClient(raw_data=True)
        self.feed = feed
        self.upstreams = upstreams

    async def latest_quote(self, symbol: str) -> Quote:
        request = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=DataFeed(self.feed))
        raw = await call_alpaca(
            "alpaca-data",
            lambda: self.client.get_stock_latest_quote(request),
            what=f"quote {symbol}",
            upstreams=self.upstreams,
        )
        body = raw.get(symbol) if isinstance(raw, dict) else None
        if not body:
            raise NotFoundError(f"Alpaca has no quote for {symbol}.", context={"symbol": symbol})
        return quote_from_alpaca(symbol, body, self.source)

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        """Alpaca's historical bars (``/v2/stocks/bars``, adjusted for splits) as `Bars`."""
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=_ALPACA_TIMEFRAMES[timeframe],
            start=start,
            end=end,
            feed=DataFeed(self.feed),
            adjustment=Adjustment.SPLIT,
        )
        raw = await call_alpaca(
            "alpaca-data",
            lambda: self.client.get_stock_bars(request),
            what=f"bars for {symbol}",
            upstreams=self.upstreams,
        )
        rows = raw.get(symbol) if isinstance(raw, dict) else None
        if not rows:
            raise NotFoundError(f"Alpaca has no {timeframe} bars for {symbol} in that range.")
        stamps = [datetime.fromisoformat(str(r["t"]).replace("Z", "+00:00")) for r in rows]
        return Bars(
            np.array([int(t.timestamp() * 1_000_000_000) for t in stamps], dtype=np.int64),
            np.array([float(r["o"]) for r in rows]),
            np.array([float(r["h"]) for r in rows]),
            np.array([float(r["l"]) for r in rows]),
            np.array([float(r["c"]) for r in rows]),
            np.array([float(r["v"]) for r in rows]),
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.client._session.close)


def quote_from_alpaca(symbol: str, body: dict[str, Any], source: str) -> Quote:
    """Alpaca's latest-quote object ``{"t", "bp", "bs", "ap", "as", ...}`` as a `Quote`.
    The price is the mid of bid and ask when both are positive, else whichever side is."""
    bid, ask = to_decimal(body.get("bp")), to_decimal(body.get("ap"))
    bid = bid if bid and bid > 0 else None
    ask = ask if ask and ask > 0 else None
    if bid is not None and ask is not None:
        price = (bid + ask) / 2
    elif bid is not None or ask is not None:
        price = bid if bid is not None else ask  # type: ignore[assignment]
    else:
        raise ExternalAPIError(f"Alpaca's quote for {symbol} has no price.", service="alpaca-data")
    return Quote(
        symbol=symbol,
        price=price,
        bid=bid,
        ask=ask,
        timestamp=datetime.fromisoformat(str(body["t"]).replace("Z", "+00:00")),
        source=source,
    )
