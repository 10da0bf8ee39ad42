"""One async market-data interface, three sources: Alpaca historical data, local files, synthetic bars.

`MarketData.get_bars(symbol, timeframe, start, end)` returns validated :class:`Bars` (UTC);
`MarketData.latest_quote(symbol)` a :class:`Quote`. Every result says where it came from
(``source``); synthetic data is always labelled ``synthetic``.

- :class:`SyntheticMarketData`: seeded geometric Brownian motion (`adapters.data.synthetic`),
  deterministic. Large ranges are generated in a worker thread. Its latest quote is the last close
  of the 1-minute synthetic bars from midnight UTC seven days ago up to now, so it is the same for
  a given moment (and jumps at midnight UTC, when that window moves).
- :class:`FilesMarketData`: ``NT_DATA_DIR/<SYMBOL>.csv`` or ``.parquet`` (`adapters.data.files`).
  The file's own bar spacing is what you get, whatever ``timeframe`` says. Latest quote = the last
  bar's close, stamped with that bar's time.
- :class:`AlpacaMarketData`: alpaca-py's ``StockHistoricalDataClient`` (IEX feed unless
  ``NT_ALPACA_DATA_FEED`` says otherwise, prices adjusted for splits and dividends), every request
  in a worker thread behind ``upstreams.call("alpaca-data", ..., idempotent=True)`` (retry +
  circuit breaker). Bars are cached per symbol with a TTL by timeframe (ranges that ended more than
  a day ago for a day: they will not change); several symbols are fetched in one request
  (`AlpacaMarketData.get_bars_many`). alpaca-py's own 429 retry (a blocking ``sleep``) is switched
  off so that the project's retry policy is the only one. Keys never appear in a log or an error.

`MarketDataHub` picks a source by name, or the best configured one: ``NT_MARKET_DATA_SOURCE``
when set, else Alpaca when both keys are set, else files when ``NT_DATA_DIR`` holds data files,
else synthetic.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from nt_mcp.adapters.data import files, synthetic
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import (
    AuthenticationError,
    ExternalAPIError,
    NetworkError,
    TradingError,
    ValidationError,
)

if TYPE_CHECKING:
    from nt_mcp.config import Settings
    from nt_mcp.infra.cache import Cache
    from nt_mcp.infra.resilience import Upstreams

T = TypeVar("T")
SOURCES = ("synthetic", "files", "alpaca")
TIMEFRAMES: tuple[str, ...] = tuple(synthetic.TIMEFRAMES)
ALPACA_SERVICE = "alpaca-data"
ALPACA_ADJUSTMENT = "all"
# Cache TTL of bars whose range reaches into the last day, by timeframe; older ranges keep a day.
BAR_TTL_S = {"1Min": 30.0, "5Min": 60.0, "15Min": 120.0, "1Hour": 600.0, "1Day": 3600.0}
CLOSED_RANGE_TTL_S = 86_400.0
QUOTE_TTL_S = 1.0
_SYNTHETIC_THREAD_BARS = 50_000
_NS = 10**9


@dataclass(frozen=True)
class Quote:
    """The latest price of a symbol: ``price`` is the mid of bid and ask when both are known,
    otherwise the one that is (or a last close for bar-based sources, where bid/ask are None)."""

    symbol: str
    price: Decimal
    bid: Decimal | None
    ask: Decimal | None
    timestamp: datetime
    source: str


class MarketData(Protocol):
    source: str  # "synthetic" | "files" | "alpaca"

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars: ...

    async def latest_quote(self, symbol: str) -> Quote: ...


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


def _price(value: float) -> Decimal:
    return Decimal(repr(float(value)))


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


class SyntheticMarketData:
    """Seeded GBM bars (see `adapters.data.synthetic`): always the same bars for the same arguments."""

    source = "synthetic"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _generate(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        try:
            return synthetic.generate_bars(symbol, start, end, timeframe, seed=self.seed)
        except DomainValueError as error:
            raise domain_error(error) from None

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        _check_timeframe(timeframe)
        _check_range(start, end)
        expected = (_utc(end) - _utc(start)).total_seconds() / synthetic.TIMEFRAMES[timeframe]
        if expected > _SYNTHETIC_THREAD_BARS:
            return await _in_thread(self._generate, symbol, timeframe, start, end)
        return self._generate(symbol, timeframe, start, end)

    async def latest_quote(self, symbol: str, now: datetime | None = None) -> Quote:
        moment = _utc(now or datetime.now(UTC)).replace(second=0, microsecond=0)
        anchor = moment.replace(hour=0, minute=0) - timedelta(days=7)
        bars = await self.get_bars(symbol, "1Min", anchor, moment)
        last = len(bars) - 1
        return Quote(
            symbol=symbol,
            price=_price(bars.close[last]),
            bid=None,
            ask=None,
            timestamp=_ns_to_datetime(int(bars.ts_ns[last])),
            source=self.source,
        )


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

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        _check_range(start, end)
        return await _in_thread(self._load, symbol, start, end)

    async def load_all(self, symbol: str) -> Bars:
        """Every bar in the symbol's file."""
        return await _in_thread(self._load, symbol, None, None)

    async def latest_quote(self, symbol: str) -> Quote:
        bars = await self.load_all(symbol)
        last = len(bars) - 1
        return Quote(
            symbol=symbol,
            price=_price(bars.close[last]),
            bid=None,
            ask=None,
            timestamp=_ns_to_datetime(int(bars.ts_ns[last])),
            source=self.source,
        )


def _bars_to_json(bars: Bars) -> dict[str, list[float] | list[int]]:
    return {
        "t": bars.ts_ns.tolist(),
        "o": bars.open.tolist(),
        "h": bars.high.tolist(),
        "l": bars.low.tolist(),
        "c": bars.close.tolist(),
        "v": bars.volume.tolist(),
    }


def _bars_from_json(data: dict[str, Any]) -> Bars:
    return Bars(
        np.asarray(data["t"], dtype=np.int64),
        np.asarray(data["o"]),
        np.asarray(data["h"]),
        np.asarray(data["l"]),
        np.asarray(data["c"]),
        np.asarray(data["v"]),
    )


def map_alpaca_error(error: BaseException) -> TradingError:
    """An alpaca-py or requests failure as a typed error. Never includes a key: Alpaca's error
    bodies carry a code and a message; the request (with its key headers) is not quoted."""
    import requests
    from alpaca.common.exceptions import APIError

    if isinstance(error, APIError):
        status = error.status_code
        try:
            detail = str(error.message)
        except (ValueError, KeyError, TypeError):
            detail = str(error)[:200]
        retry_after: float | None = None
        response = error.response
        if response is not None:
            header = response.headers.get("Retry-After")
            if header is not None:
                try:
                    retry_after = float(header)
                except ValueError:
                    retry_after = None
        if status in (401, 403):
            return AuthenticationError(
                f"Alpaca market data refused the credentials ({status}: {detail}); check "
                "NT_ALPACA_API_KEY and NT_ALPACA_SECRET_KEY, and that your plan includes the "
                "NT_ALPACA_DATA_FEED feed.",
                context={"service": ALPACA_SERVICE, "status": status},
            )
        if status in (400, 404, 422):
            return ValidationError(f"Alpaca market data rejected the request ({status}): {detail}", argument="symbol")
        return ExternalAPIError(
            f"Alpaca market data answered {status}: {detail}",
            service=ALPACA_SERVICE,
            status=status,
            retry_after_s=retry_after,
        )
    if isinstance(error, requests.Timeout | requests.ConnectionError):
        return NetworkError(
            f"Alpaca market data is unreachable ({type(error).__name__}).", context={"service": ALPACA_SERVICE}
        )
    return ExternalAPIError(
        f"Alpaca market data call failed ({type(error).__name__}).", service=ALPACA_SERVICE, status=None
    )


class AlpacaMarketData:
    """Alpaca historical stock data through alpaca-py, cached, behind retry and a circuit breaker."""

    source = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        upstreams: Upstreams,
        cache: Cache,
        feed: str = "iex",
        url_override: str | None = None,
    ) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self.upstreams = upstreams
        self.cache = cache
        self.feed = feed
        self._url_override = url_override
        self._client: Any = None

    def __repr__(self) -> str:  # never show the keys
        return f"AlpacaMarketData(feed={self.feed!r})"

    def client(self) -> Any:
        """The alpaca-py client, created on first use (importing alpaca-py costs start-up time)."""
        if self._client is None:
            from alpaca.data.historical import StockHistoricalDataClient

            client = StockHistoricalDataClient(self._api_key, self._secret_key, url_override=self._url_override)
            client._retry = 0  # our Upstreams policy retries; alpaca-py's would sleep in the thread
            self._client = client
        return self._client

    async def _call(self, fn: Callable[[], T]) -> T:
        def guarded() -> T:
            try:
                return fn()
            except Exception as error:
                raise map_alpaca_error(error) from None

        return await self.upstreams.call(ALPACA_SERVICE, lambda: asyncio.to_thread(guarded), idempotent=True)

    def _fetch_bars(self, symbols: list[str], timeframe: str, start: datetime, end: datetime) -> dict[str, Any]:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        amount = int("".join(ch for ch in timeframe if ch.isdigit()))
        unit = {"Min": TimeFrameUnit.Minute, "Hour": TimeFrameUnit.Hour, "Day": TimeFrameUnit.Day}[
            timeframe.lstrip("0123456789")
        ]
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TimeFrame(amount, unit),
            start=start,
            end=end,
            feed=DataFeed(self.feed),
            adjustment=Adjustment(ALPACA_ADJUSTMENT),
        )
        barset = self.client().get_stock_bars(request)
        out: dict[str, Any] = {}
        for symbol in symbols:
            rows = barset.data.get(symbol, [])
            if not rows:
                continue
            ts = np.array([_utc(r.timestamp).timestamp() for r in rows]) * 1e6
            out[symbol] = {
                "t": (np.round(ts).astype(np.int64) * 1000).tolist(),
                "o": [float(r.open) for r in rows],
                "h": [float(r.high) for r in rows],
                "l": [float(r.low) for r in rows],
                "c": [float(r.close) for r in rows],
                "v": [float(r.volume) for r in rows],
            }
        return out

    def _key(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> str:
        return (
            f"md:alpaca:{self.feed}:{ALPACA_ADJUSTMENT}:bars:{symbol}:{timeframe}:{start.isoformat()}:{end.isoformat()}"
        )

    @staticmethod
    def ttl_s(timeframe: str, end: datetime, now: datetime | None = None) -> float:
        """How long fetched bars stay cached: a day for ranges that ended over a day ago, else by timeframe."""
        if _utc(end) < _utc(now or datetime.now(UTC)) - timedelta(days=1):
            return CLOSED_RANGE_TTL_S
        return BAR_TTL_S.get(timeframe, 60.0)

    async def get_bars_many(
        self, symbols: Sequence[str], timeframe: str, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        """Bars for several symbols: cached ones from the cache, the rest in ONE Alpaca request.
        Raises ValidationError (argument ``symbol``) when a symbol has no bars in the range."""
        _check_timeframe(timeframe)
        _check_range(start, end)
        start, end = _utc(start), _utc(end)
        wanted = list(dict.fromkeys(s.upper() for s in symbols))
        found: dict[str, Any] = {}
        for symbol in wanted:
            cached = await self.cache.get(self._key(symbol, timeframe, start, end))
            if cached is not None:
                found[symbol] = cached
        missing = [s for s in wanted if s not in found]
        if missing:
            fetched = await self._call(functools.partial(self._fetch_bars, missing, timeframe, start, end))
            ttl = self.ttl_s(timeframe, end)
            for symbol, data in fetched.items():
                await self.cache.set(self._key(symbol, timeframe, start, end), data, ttl)
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

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        return (await self.get_bars_many([symbol], timeframe, start, end))[symbol.upper()]

    def _fetch_quote(self, symbol: str) -> dict[str, Any]:
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockLatestQuoteRequest

        quotes = self.client().get_stock_latest_quote(
            StockLatestQuoteRequest(symbol_or_symbols=[symbol], feed=DataFeed(self.feed))
        )
        quote = quotes.get(symbol)
        if quote is None:
            raise ValidationError(f"Alpaca ({self.feed} feed) has no quote for {symbol}", argument="symbol")
        return {
            "bid": repr(float(quote.bid_price)) if quote.bid_price else None,
            "ask": repr(float(quote.ask_price)) if quote.ask_price else None,
            "t": _utc(quote.timestamp).isoformat(),
        }

    async def latest_quote(self, symbol: str) -> Quote:
        symbol = symbol.upper()
        data = await self.cache.get_or_load(
            f"md:alpaca:{self.feed}:quote:{symbol}",
            lambda: self._call(functools.partial(self._fetch_quote, symbol)),
            QUOTE_TTL_S,
        )
        bid = Decimal(data["bid"]) if data["bid"] else None
        ask = Decimal(data["ask"]) if data["ask"] else None
        if bid is not None and ask is not None:
            price = (bid + ask) / 2
        elif bid is not None or ask is not None:
            price = bid if bid is not None else ask  # type: ignore[assignment]
        else:
            raise ExternalAPIError(
                f"Alpaca's latest {symbol} quote has neither bid nor ask", service=ALPACA_SERVICE, retryable=False
            )
        return Quote(
            symbol=symbol,
            price=price,
            bid=bid,
            ask=ask,
            timestamp=datetime.fromisoformat(data["t"]),
            source=self.source,
        )


class MarketDataHub:
    """The configured market-data sources; `get` picks one by name or the best configured."""

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
                s.alpaca_api_key.get_secret_value(),
                s.alpaca_secret_key.get_secret_value(),
                upstreams=self.upstreams,
                cache=self.cache,
                feed=s.alpaca_data_feed,
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
