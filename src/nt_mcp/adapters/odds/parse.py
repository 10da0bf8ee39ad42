"""The Odds API's event JSON as the domain's `EventOdds`, checked item by item.

Shape (``/v4/sports/{sport}/odds`` is a list of these; ``/events/{id}/odds`` is one)::

    {"id", "sport_key", "sport_title"?, "commence_time", "home_team", "away_team",
     "bookmakers": [{"key", "title", "last_update",
                     "markets": [{"key", "last_update"?, "outcomes": [{"name", "price", "point"?, "description"?}]}]}]}

Times are ISO 8601 (``dateFormat=iso``) or POSIX seconds (``dateFormat=unix``). Prices are decimal odds,
or American odds when the response was fetched with ``oddsFormat=american``. A market's snapshot time is
its own ``last_update``, else its bookmaker's. Malformed items are skipped and counted with a reason,
never guessed at.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nt_mcp.adapters.odds.model import PriceFormat
from nt_mcp.domain.betting import (
    MAX_DECIMAL_ODDS,
    BookMarket,
    EventOdds,
    Outcome,
    check_decimal,
    decimal_from_american,
)
from nt_mcp.domain.errors import DomainValueError

MAX_SKIP_REASONS = 20
EARLIEST_S, LATEST_S = 0.0, 4_102_444_800.0  # 1970-01-01 .. 2100-01-01: times outside are not times
MAX_POINT = 1_000_000.0  # handicaps and totals are small numbers


@dataclass(frozen=True)
class ParsedEvent:
    odds: EventOdds
    sport_title: str | None
    book_updates: dict[str, float]  # bookmaker key -> its own last_update


@dataclass
class ParsedBoard:
    events: list[ParsedEvent] = field(default_factory=list)
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.skip_reasons) < MAX_SKIP_REASONS:
            self.skip_reasons.append(reason[:200])


class _Times:
    """ISO strings and POSIX numbers to POSIX seconds, memoised (a board repeats the same stamps)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def __call__(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("not a time")
        if isinstance(value, int | float):
            if not EARLIEST_S <= value <= LATEST_S:  # NaN fails too
                raise ValueError("not a time between 1970 and 2100")
            return float(value)
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError("not a time")
        known = self._seen.get(value)
        if known is None:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            known = moment.timestamp()
            if not EARLIEST_S <= known <= LATEST_S:
                raise ValueError("not a time between 1970 and 2100")
            self._seen[value] = known
        return known


def to_seconds(value: Any) -> float | None:
    """An ISO 8601 time or POSIX seconds as POSIX seconds; None when it is neither."""
    try:
        return _Times()(value)
    except (ValueError, TypeError, OverflowError):
        return None


_NUMBER = (int, float)


def _price(value: Any, american: bool) -> float | None:
    """Decimal odds from a JSON number (decimal, or American when ``american``); None when it is not a price."""
    kind = type(value)
    if kind is not float and kind is not int:  # bool is not a price (type(True) is bool)
        return None
    if american:
        try:
            return check_decimal(decimal_from_american(float(value)))
        except DomainValueError:
            return None
    return float(value) if 1 < value <= MAX_DECIMAL_ODDS else None  # NaN and inf fail the comparison


def _text(value: Any, limit: int = 300) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def parse_event(raw: Any, price_format: PriceFormat, board: ParsedBoard, times: _Times | None = None) -> None:
    """Parse one event into ``board`` (or count why it was skipped)."""
    times = times or _Times()
    american = price_format == "american"
    if not isinstance(raw, dict):
        board.skip("an event is not a JSON object")
        return
    event_id = _text(raw.get("id"), 128)
    sport_key = _text(raw.get("sport_key"), 64)
    try:
        commence = times(raw.get("commence_time"))
    except (ValueError, TypeError, OverflowError):
        board.skip(f"event {event_id}: commence_time is not a time")
        return
    if event_id is None or sport_key is None:
        board.skip("an event has no id or no sport_key")
        return
    books: list[BookMarket] = []
    updates: dict[str, float] = {}
    for bookmaker in raw.get("bookmakers") or ():
        if not isinstance(bookmaker, dict) or _text(bookmaker.get("key"), 64) is None:
            board.skip(f"event {event_id}: a bookmaker without a key")
            continue
        key = bookmaker["key"][:64]
        title = _text(bookmaker.get("title"), 100) or key
        try:
            book_update = times(bookmaker.get("last_update"))
        except (ValueError, TypeError, OverflowError):
            book_update = math.nan
        updates[key] = book_update
        for market in bookmaker.get("markets") or ():
            parsed = _market(market, key, title, book_update, american, times)
            if isinstance(parsed, str):
                board.skip(f"event {event_id}, {key}: {parsed}")
            else:
                books.append(parsed)
    home, away = _text(raw.get("home_team"), 200), _text(raw.get("away_team"), 200)
    board.events.append(
        ParsedEvent(
            EventOdds(event_id, sport_key, commence, home, away, tuple(books)), _text(raw.get("sport_title")), updates
        )
    )


def _market(
    raw: Any, bookmaker: str, title: str, book_update: float, american: bool, times: _Times
) -> BookMarket | str:
    """One market of one bookmaker, or why it is unusable. The hot path of a board: plain type checks."""
    if type(raw) is not dict:
        return "a market that is not a JSON object"
    key = raw.get("key")
    if type(key) is not str or not key:
        return "a market without a key"
    key = key[:64]
    stamp = raw.get("last_update")
    try:
        update = book_update if stamp is None else times(stamp)
    except (ValueError, TypeError, OverflowError):
        update = book_update
    if update != update:  # NaN: neither the market nor its bookmaker has a last_update
        return f"market {key} has no last_update"
    outcomes = []
    for item in raw.get("outcomes") or ():
        if type(item) is not dict:
            return f"market {key}: an outcome that is not a JSON object"
        name = item.get("name")
        if type(name) is not str or not name:
            return f"market {key}: an outcome without a name"
        price = _price(item.get("price"), american)
        if price is None:
            return f"market {key}: outcome {name[:60]!r} has no valid {'american' if american else 'decimal'} price"
        point = item.get("point")
        if point is not None:
            if type(point) not in _NUMBER or not -MAX_POINT < point < MAX_POINT:
                return f"market {key}: outcome {name[:60]!r} has a point that is not a finite number"
            point = float(point)
        description = item.get("description")
        if description is not None and (type(description) is not str or not description):
            description = None
        outcomes.append(Outcome(name[:300], price, point, description[:300] if description else None))
    if not outcomes:
        return f"market {key} has no outcomes"
    parsed = BookMarket(bookmaker, key, update, tuple(outcomes), title)
    if len(parsed.signature) != len(outcomes):
        return f"market {key} lists the same outcome twice"
    return parsed


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk computation, then resume it.

    A large board is hundreds of thousands of small objects that hold no reference cycles; while they
    are built (and scanned) the collector would walk the whole heap over and over (about 3x the time
    on 1,000 events x 40 bookmakers). Reference counting still frees everything as usual."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def parse_events(raw: Iterable[Any], price_format: PriceFormat = "decimal") -> ParsedBoard:
    """Every event of a board (a list of event objects), built with the collector paused (`gc_paused`)."""
    board = ParsedBoard()
    times = _Times()
    with gc_paused():
        for item in raw:
            parse_event(item, price_format, board, times)
    return board
