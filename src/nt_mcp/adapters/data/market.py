"""Where prices come from: one async `MarketData` interface and its sources.

`MarketData.get_bars(symbol, timeframe, start, end, limit=None)` returns validated :class:`Bars` (UTC);
with ``limit`` only the latest ``limit`` bars of the range, and each source then generates or fetches
only those (synthetic: the days that hold them; Alpaca: one request sorted newest first with that
limit; files: the file, then its tail);
`MarketData.latest_quote(symbol)` a :class:`Quote`. Every result names its ``source`` so a tool result
can say where a price came from; synthetic prices are always labelled ``synthetic``.

- `SyntheticMarketData` (the zero-configuration default): the seeded GBM generator of
  `nt_mcp.adapters.data.synthetic`, labelled ``source="synthetic"``. One path per symbol, whatever
  range is asked for: the latest quote at ``t`` is the close of the last 1-minute bar finished by
  ``t`` (on a weekend, Friday's last minute), and bars end at the last bar finished by ``t``, so
  quotes, minute bars and daily bars agree. Prices are not real.
- `FilesMarketData`: ``NT_DATA_DIR/<SYMBOL>.csv`` or ``.parquet`` (`adapters.data.files`). The file's
  own bar spacing is what you get, whatever ``timeframe`` says. Latest quote = the last bar's close,
  stamped with that bar's time.
- `AlpacaMarketData`: Alpaca's market data API through alpaca-py (IEX feed unless
  ``NT_ALPACA_DATA_FEED`` says otherwise, bars split-adjusted), every call in a worker thread behind
  the ``alpaca-data`` circuit breaker and retries (`adapters.alpaca_common.call_alpaca`). With a cache,
  bars are cached per symbol with a TTL by timeframe (a day for ranges that ended over a day ago);
  several symbols are fetched in one request (`AlpacaMarketData.get_bars_many`).

`MarketDataHub` picks a source for the backtest tools by name, or the best configured one:
``NT_MARKET_DATA_SOURCE`` when set, else Alpaca when both keys are set, else files when
``NT_DATA_DIR`` holds data files, else synthetic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from nt_mcp.adapters.alpaca_common import call_alpaca, disable_internal_retries
from nt_mcp.adapters.data import files
from nt_mcp.adapters.data.synthetic import TIMEFRAMES, generate_bars, price_at
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import ExternalAPIError, NotFoundError, ValidationError
from nt_mcp.infra.resilience import Upstreams

if TYPE_CHECKING:
    from nt_mcp.config import Settings
    from nt_mcp.infra.cache import Cache


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

    async def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, limit: int | None = None
    ) -> Bars: ...
    async def latest_quote(self, symbol: str) -> Quote: ...


SOURCES = ("synthetic", "files", "alpaca")
ALPACA_SERVICE = "alpaca-data"
_ALPACA_TIMEFRAMES = {
    "1Min": (1, "Minute"),
    "5Min": (5, "Minute"),
    "15Min": (15, "Minute"),
    "1Hour": (1, "Hour"),
    "1Day": (1, "Day"),
}  # alpaca-py TimeFrame(amount, TimeFrameUnit[unit]); alpaca-py is imported on first use (~0.7 s)
# Cache TTL of bars whose range reaches into the last day, by timeframe; older ranges keep a day.
BAR_TTL_S = {"1Min": 30.0, "5Min": 60.0, "15Min": 120.0, "1Hour": 600.0, "1Day": 3600.0}
CLOSED_RANGE_TTL_S = 86_400.0
_NS = 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // _NS, UTC) + timedelta(microseconds=(ns % _NS) // 1000)


def _check_timeframe(timeframe: str) -> None:
    if timeframe not in TIMEFRAMES:
        raise ValidationError(f"timeframe must be one of {list(TIMEFRAMES)}, got {timeframe!r}", argument="timeframe")


def _check_range(start: datetime, end: datetime) -> None:
    if _utc(start) > _utc(end):
        raise ValidationError(f"start ({start.isoformat()}) is after end ({end.isoformat()})", argument="start")


def domain_error(error: DomainValueError, argument: str | None = None) -> ValidationError:
    """A domain error as the project's ValidationError, naming the argument."""
    return ValidationError(error.message, argument=argument or error.argument)


class SyntheticMarketData:
    """Quotes from the seeded synthetic generator (see the module docstring for the exact rule)."""

    source = "synthetic"

    def __init__(self, seed: int = 0, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.seed = seed
        self.now = now

    async def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, limit: int | None = None
    ) -> Bars:
        """The generator's bars for ``symbol``, only bars already finished at this source's clock
        (so today's daily bar never shows the day's future close); not real prices."""
        _check_timeframe(timeframe)
        _check_range(start, end)
        end = min(_utc(end), _utc(self.now()) - timedelta(seconds=TIMEFRAMES[timeframe]))
        try:
            return await asyncio.to_thread(generate_bars, symbol, start, end, timeframe, seed=self.seed, last=limit)
        except DomainValueError as error:
            raise ValidationError(str(error), argument=error.argument) from error

    async def latest_quote(self, symbol: str) -> Quote:
        price, at = await asyncio.to_thread(price_at, symbol, self.now(), seed=self.seed)
        value = Decimal(str(round(price, 4)))
        return Quote(symbol=symbol, price=value, bid=None, ask=None, timestamp=at, source=self.source)

    async def close(self) -> None:
        return None


class FilesMarketData:
    """Bars from ``<data_dir>/<SYMBOL>.csv|.parquet``; the file's bar spacing is what it is."""

    source = "files"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def has_files(self) -> bool:
        """Whether the directory holds at least one CSV or Parquet file."""
        if not self.data_dir.is_dir():
            return False
        return any(p.suffix.lower() in {".csv", ".parquet"} and p.is_file() for p in self.data_dir.iterdir())

    def _load(self, symbol: str, start: datetime | None, end: datetime | None) -> Bars:
        try:
            return files.load_bars(self.data_dir, symbol, start, end)
        except DomainValueError as error:
            if error.argument == "symbol" and error.message.startswith("no "):
                raise ValidationError(
                    f"no data file for {symbol!r} in NT_DATA_DIR (looked for {symbol}.csv and {symbol}.parquet)",
                    argument="symbol",
                ) from None
            if error.argument == "start":
                raise ValidationError(error.message, argument="start") from None
            raise ValidationError(f"the data file for {symbol} is unusable: {error}", argument="symbol") from None

    async def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, limit: int | None = None
    ) -> Bars:
        _check_range(start, end)
        bars = await asyncio.to_thread(self._load, symbol, start, end)
        return bars if limit is None or len(bars) <= limit else bars.slice(len(bars) - limit, len(bars))

    async def load_all(self, symbol: str) -> Bars:
        """Every bar in the symbol's file."""
        return await asyncio.to_thread(self._load, symbol, None, None)

    async def latest_quote(self, symbol: str) -> Quote:
        bars = await self.load_all(symbol)
        last = len(bars) - 1
        return Quote(
            symbol=symbol,
            price=Decimal(repr(float(bars.close[last]))),
            bid=None,
            ask=None,
            timestamp=_ns_to_datetime(int(bars.ts_ns[last])),
            source=self.source,
        )

    async def close(self) -> None:
        return None


def to_decimal(value: Any) -> Decimal | None:
    """An upstream number as a Decimal: strings exactly, JSON floats via their shortest repr."""
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _bars_json(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Alpaca's raw bars ``[{"t", "o", "h", "l", "c", "v", ...}]`` as columns (cacheable JSON)."""
    stamps = [_utc(datetime.fromisoformat(str(r["t"]).replace("Z", "+00:00"))) for r in rows]
    return {
        "t": [(t - _EPOCH) // timedelta(microseconds=1) * 1000 for t in stamps],
        "o": [float(r["o"]) for r in rows],
        "h": [float(r["h"]) for r in rows],
        "l": [float(r["l"]) for r in rows],
        "c": [float(r["c"]) for r in rows],
        "v": [float(r["v"]) for r in rows],
    }


def _bars_from_json(data: dict[str, Any]) -> Bars:
    return Bars(
        np.asarray(data["t"], dtype=np.int64),
        np.asarray(data["o"], dtype=np.float64),
        np.asarray(data["h"], dtype=np.float64),
        np.asarray(data["l"], dtype=np.float64),
        np.asarray(data["c"], dtype=np.float64),
        np.asarray(data["v"], dtype=np.float64),
    )


class AlpacaMarketData:
    """Quotes and bars from Alpaca's market data API (IEX feed by default; SIP needs a subscription).

    alpaca-py is synchronous: every call runs in a worker thread (`asyncio.to_thread`). With ``cache``,
    bars are cached per symbol (`ttl_s`); without, every call asks Alpaca."""

    source = "alpaca"

    def __init__(
        self, client: Any, feed: str = "iex", upstreams: Upstreams | None = None, cache: Cache | None = None
    ) -> None:
        self.client = client  # an alpaca.data.historical.StockHistoricalDataClient(raw_data=True)
        self.feed = feed
        self.upstreams = upstreams
        self.cache = cache

    def __repr__(self) -> str:  # never show the client (it holds the keys)
        return f"AlpacaMarketData(feed={self.feed!r})"

    async def latest_quote(self, symbol: str) -> Quote:
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockLatestQuoteRequest

        request = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=DataFeed(self.feed))
        raw = await call_alpaca(
            ALPACA_SERVICE,
            lambda: self.client.get_stock_latest_quote(request),
            what=f"quote {symbol}",
            upstreams=self.upstreams,
        )
        body = raw.get(symbol) if isinstance(raw, dict) else None
        if not body:
            raise NotFoundError(f"Alpaca has no quote for {symbol}.", context={"symbol": symbol})
        return quote_from_alpaca(symbol, body, self.source)

    @staticmethod
    def ttl_s(timeframe: str, end: datetime, now: datetime | None = None) -> float:
        """How long fetched bars stay cached: a day for ranges that ended over a day ago, else by timeframe."""
        if _utc(end) < _utc(now or datetime.now(UTC)) - timedelta(days=1):
            return CLOSED_RANGE_TTL_S
        return BAR_TTL_S.get(timeframe, 60.0)

    def _key(self, symbol: str, timeframe: str, start: datetime, end: datetime, limit: int | None = None) -> str:
        span = f"{start.isoformat()}:{end.isoformat()}" + (f":last{limit}" if limit is not None else "")
        return f"md:alpaca:{self.feed}:split:bars:{symbol}:{timeframe}:{span}"

    async def _fetch(
        self, symbols: list[str], timeframe: str, start: datetime, end: datetime, limit: int | None = None
    ) -> dict[str, Any]:
        """Bars per symbol as cacheable columns. With ``limit`` (one symbol only: Alpaca's limit counts
        bars across all symbols of a request), the newest ``limit`` bars: asked newest first, one page."""
        from alpaca.common.enums import Sort
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        assert limit is None or len(symbols) == 1

        amount, unit = _ALPACA_TIMEFRAMES[timeframe]
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TimeFrame(amount, TimeFrameUnit[unit]),
            start=start,
            end=end,
            feed=DataFeed(self.feed),
            adjustment=Adjustment.SPLIT,
            limit=limit,
            sort=Sort.DESC if limit is not None else None,
        )
        try:
            raw = await call_alpaca(
                ALPACA_SERVICE,
                lambda: self.client.get_stock_bars(request),
                what=f"bars for {', '.join(symbols)}",
                upstreams=self.upstreams,
            )
        except ValidationError as error:  # Alpaca's 400/422: name the argument
            if error.argument is None:
                raise ValidationError(error.message, argument="symbol") from error
            raise
        raw = raw if isinstance(raw, dict) else {}
        if limit is not None:  # newest first: back to time order
            return {s: _bars_json(list(reversed(raw[s]))) for s in symbols if raw.get(s)}
        return {s: _bars_json(raw[s]) for s in symbols if raw.get(s)}

    async def get_bars_many(
        self,
        symbols: Sequence[str],
        timeframe: str,
        start: datetime,
        end: datetime,
        limit: int | None = None,
    ) -> dict[str, Bars]:
        """Bars for several symbols: cached ones from the cache, the rest in ONE Alpaca request (paged
        by alpaca-py). Raises ValidationError (argument ``symbol``) when a symbol has no bars in the range.
        ``limit`` (the latest bars only) needs a single symbol."""
        _check_timeframe(timeframe)
        _check_range(start, end)
        start, end = _utc(start), _utc(end)
        wanted = list(dict.fromkeys(s.upper() for s in symbols))
        if limit is not None and len(wanted) > 1:
            raise ValueError("limit works for one symbol at a time")
        found: dict[str, Any] = {}
        if self.cache is not None:
            for symbol in wanted:
                cached = await self.cache.get(self._key(symbol, timeframe, start, end, limit))
                if cached is not None:
                    found[symbol] = cached
        missing = [s for s in wanted if s not in found]
        if missing:
            fetched = await self._fetch(missing, timeframe, start, end, limit)
            if self.cache is not None:
                ttl = self.ttl_s(timeframe, end)
                for symbol, data in fetched.items():
                    await self.cache.set(self._key(symbol, timeframe, start, end, limit), data, ttl)
            found.update(fetched)
        empty = [s for s in wanted if s not in found]
        if empty:
            raise ValidationError(
                f"Alpaca ({self.feed} feed) has no {timeframe} bars for {', '.join(empty)} between "
                f"{start.isoformat()} and {end.isoformat()}",
                argument="symbol" if len(wanted) == 1 else "symbols",
            )
        try:
            return {s: _bars_from_json(found[s]) for s in wanted}
        except DomainValueError as error:
            raise ValidationError(f"Alpaca bars are unusable: {error}", argument="symbol") from None

    async def get_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime, limit: int | None = None
    ) -> Bars:
        """Alpaca's historical bars (``/v2/stocks/bars``, adjusted for splits) as `Bars`."""
        return (await self.get_bars_many([symbol], timeframe, start, end, limit))[symbol.upper()]

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
        raise ExternalAPIError(f"Alpaca's quote for {symbol} has no price.", service=ALPACA_SERVICE)
    return Quote(
        symbol=symbol,
        price=price,
        bid=bid,
        ask=ask,
        timestamp=datetime.fromisoformat(str(body["t"]).replace("Z", "+00:00")),
        source=source,
    )


def build_alpaca_data_client(settings: Settings) -> Any:
    """alpaca-py's historical data client for the configured keys (raw JSON, no internal retries)."""
    from alpaca.data.historical.stock import StockHistoricalDataClient

    assert settings.alpaca_api_key is not None and settings.alpaca_secret_key is not None
    client = StockHistoricalDataClient(
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_secret_key.get_secret_value(),
        raw_data=True,
        url_override=settings.alpaca_data_url,
    )
    return disable_internal_retries(client)


class MarketDataHub:
    """The market-data sources the backtest tools may use; `get` picks one by name or the best configured."""

    def __init__(self, settings: Settings, upstreams: Upstreams, cache: Cache) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.cache = cache
        self._sources: dict[str, MarketData] = {"synthetic": SyntheticMarketData()}

    def configured(self) -> list[str]:
        """Sources that can answer now, best first."""
        out = []
        if self.settings.alpaca_api_key is not None and self.settings.alpaca_secret_key is not None:
            out.append("alpaca")
        if self.settings.data_dir is not None and FilesMarketData(self.settings.data_dir).has_files():
            out.append("files")
        out.append("synthetic")
        return out

    @property
    def default_source(self) -> str:
        return self.settings.market_data_source or self.configured()[0]

    def get(self, source: str | None = None) -> MarketData:
        """The source called ``source`` (None: the default). ValidationError(argument="data_source")
        naming the settings to set when it is not configured."""
        name = source or self.default_source
        if name not in SOURCES:
            raise ValidationError(f"data_source must be one of {list(SOURCES)}, got {name!r}", argument="data_source")
        existing = self._sources.get(name)
        if existing is not None:
            return existing
        s = self.settings
        created: MarketData
        if name == "alpaca":
            if s.alpaca_api_key is None or s.alpaca_secret_key is None:
                raise ValidationError(
                    "data_source 'alpaca' is not configured: set NT_ALPACA_API_KEY and NT_ALPACA_SECRET_KEY "
                    f"(configured sources: {', '.join(self.configured())})",
                    argument="data_source",
                )
            created = AlpacaMarketData(
                build_alpaca_data_client(s), feed=s.alpaca_data_feed, upstreams=self.upstreams, cache=self.cache
            )
        else:
            if s.data_dir is None or not s.data_dir.is_dir():
                raise ValidationError(
                    "data_source 'files' is not configured: set NT_DATA_DIR to a directory holding "
                    f"<SYMBOL>.csv or <SYMBOL>.parquet files (configured sources: {', '.join(self.configured())})",
                    argument="data_source",
                )
            created = FilesMarketData(s.data_dir)
        self._sources[name] = created
        return created

    async def close(self) -> None:
        for source in self._sources.values():
            closer: Any = getattr(source, "close", None)
            if closer is not None:
                await closer()
