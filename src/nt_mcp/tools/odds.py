"""Sports odds tools: real bookmaker prices from The Odds API v4 (NT_ODDS_API_KEY) or from saved answers
of it (NT_ODDS_DIR), and the betting math (conversions, margin removal, Kelly), which always works.

Every odds result says ``source`` (theoddsapi or files), ``fetched_at``, the snapshot time of each price
(the bookmaker's ``last_update`` of its market), the request made (the key redacted), what it cost in
The Odds API credits (``cost.expected_max`` by the documented formula, ``cost.charged`` from the
``x-requests-last`` header, 0 when served from the 30 s cache) and the ``quota`` left. Odds tools
answer ``NOT_CONFIGURED`` when neither setting is set: no odds are ever invented. Prices are decimal
odds unless ``odds_format`` asks otherwise (``decimal`` is always given beside).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, Field

from nt_mcp.adapters.odds.model import EVENT_ID_PATTERN, KEY_PATTERN, Fetched, OddsRequest, Quota
from nt_mcp.adapters.odds.parse import ParsedEvent, to_seconds
from nt_mcp.domain.betting import (
    ArbitrageQuery,
    OddsFormat,
    best_prices,
    booksum,
    format_odds,
    fraction_from_decimal,
    is_lay_market,
    kelly_stake,
    parse_odds,
    proportional_probabilities,
    shin_probabilities,
)
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import ValidationError
from nt_mcp.services.odds import Board, OddsService
from nt_mcp.tools.arguments import DATETIME_HELP, OptionalUtcDateTime, bounded_decimal
from nt_mcp.tools.registry import ToolContext, tool

# ---------------------------------------------------------------- arguments

Region = Literal["us", "us2", "us_dfs", "us_ex", "uk", "eu", "fr", "se", "au"]
FeaturedMarket = Literal["h2h", "spreads", "totals", "outrights", "h2h_lay", "outrights_lay"]
BackMarket = Literal["h2h", "spreads", "totals"]
Key = Annotated[str, Field(pattern=KEY_PATTERN)]
SportArg = Annotated[
    str,
    Field(
        pattern=KEY_PATTERN,
        description="Sport key from get_sports, lowercase, e.g. basketball_nba, americanfootball_nfl, soccer_epl.",
    ),
]
EventIdArg = Annotated[str, Field(pattern=EVENT_ID_PATTERN, description="Event id from get_odds or get_events.")]
RegionsArg = Annotated[
    list[Region],
    Field(
        min_length=1,
        max_length=9,
        description="Bookmaker regions (us, us2, us_dfs, us_ex, uk, eu, fr, se, au). Each region multiplies "
        "the credits a call costs; ignored when bookmakers are given (10 bookmakers cost one region).",
    ),
]
BookmakersArg = Annotated[
    list[Key] | None,
    Field(max_length=100, description="Bookmaker keys (e.g. draftkings, fanduel, pinnacle) instead of regions."),
]
OddsFormatArg = Annotated[
    OddsFormat,
    Field(description="How prices are shown: decimal, american, fractional or probability (decimal is always given)."),
]
MaxAgeArg = Annotated[
    int | None,
    Field(
        ge=1, le=7 * 86400, description="Drop quotes whose last_update is older than this (seconds); null: keep all."
    ),
]
if TYPE_CHECKING:  # mypy sees the plain type; pydantic the bounded one
    Money: TypeAlias = Decimal
    StakeUnit: TypeAlias = Decimal
    Rate: TypeAlias = Decimal
    Percent: TypeAlias = Decimal
    Probability: TypeAlias = Decimal
    Share: TypeAlias = Decimal
else:
    Money = bounded_decimal(minimum=0, maximum=10**9, max_places=2)
    StakeUnit = bounded_decimal(minimum=0, maximum=10**6, max_places=2)
    Rate = bounded_decimal(minimum=0, maximum="0.5", max_places=6, exclusive_minimum=False)
    Percent = bounded_decimal(minimum=0, maximum=100, max_places=4, exclusive_minimum=False)
    Probability = bounded_decimal(minimum=0, maximum="0.999999999", max_places=9)
    Share = bounded_decimal(minimum=0, maximum=1, max_places=6)
OddsValue = Annotated[
    str | float,
    Field(description="A price: decimal 2.5, American +150 / -110, fractional '5/2' or 'evens', or a probability 0.4."),
]


def _unique(items: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items or ()))


def _domain(error: DomainValueError, argument: str | None = None) -> ValidationError:
    return ValidationError(error.message, argument=argument or error.argument)


def _odds(value: str | float, odds_format: OddsFormat, argument: str) -> float:
    try:
        return parse_odds(value, odds_format, argument)
    except DomainValueError as error:
        raise _domain(error, argument) from None


def _check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start > end:
        raise ValidationError("commence_from is after commence_to", argument="commence_from")


# ---------------------------------------------------------------- provenance in every odds result


class QuotaOut(BaseModel):
    remaining: int | None = Field(description="usage credits left (x-requests-remaining)")
    used: int | None = Field(description="credits used since the plan's reset (x-requests-used)")
    last: int | None = Field(description="credits the latest upstream request cost (x-requests-last)")
    observed_at: datetime


class CostOut(BaseModel):
    expected_max: int = Field(description="credits of this request by The Odds API's documented formula")
    charged: int | None = Field(
        description="credits charged for this call (x-requests-last); 0 when cached; null for files"
    )
    formula: str
    cached: bool = Field(description="served from the cache: no upstream request was made")


class StoredOut(BaseModel):
    fetch_id: str
    prices: int
    durable: Literal["database", "spool", "failed"]


class Provenance(BaseModel):
    source: Literal["theoddsapi", "files"] = Field(description="theoddsapi (live API) or files (saved answers)")
    fetched_at: datetime = Field(description="when the upstream answered (files: when the file was written)")
    snapshot_at: datetime | None = Field(description="historical snapshot time (at=...), else null")
    request: str = Field(description="the request made, API key redacted (files: the file name)")
    cost: CostOut
    quota: QuotaOut | None = Field(description="The Odds API credits after the latest answer; null for files")


def _quota(quota: Quota | None) -> QuotaOut | None:
    return None if quota is None else QuotaOut(**quota.__dict__)


def _provenance(fetched: Fetched) -> dict[str, Any]:
    return {
        "source": fetched.source,
        "fetched_at": fetched.fetched_at,
        "snapshot_at": fetched.snapshot_at,
        "request": fetched.request,
        "cost": CostOut(**fetched.cost.__dict__, cached=fetched.cached),
        "quota": _quota(fetched.quota),
    }


class BoardProvenance(Provenance):
    stored: StoredOut | None = Field(description="the snapshot stored for this answer; null when served from the cache")
    skipped: int = Field(description="malformed items of the answer left out")
    skip_reasons: list[str]


def _board_provenance(board: Board) -> dict[str, Any]:
    stored = board.stored
    return _provenance(board.fetched) | {
        "stored": None if stored is None else StoredOut(**stored.__dict__),
        "skipped": board.skipped,
        "skip_reasons": board.skip_reasons,
    }


def _service(ctx: ToolContext) -> OddsService:
    return ctx.services.odds


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# ---------------------------------------------------------------- get_sports / get_events


class SportOut(BaseModel):
    key: str
    title: str | None
    group: str | None = None
    description: str | None = None
    active: bool | None = Field(None, description="in season (The Odds API); null for files")
    has_outrights: bool | None = None
    events: int | None = Field(None, description="events in the file (files source)")


class SportsResult(Provenance):
    sports: list[SportOut]
    count: int


def _sport(raw: Any) -> SportOut | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        return None

    def text(name: str) -> str | None:
        value = raw.get(name)
        return value[:200] if isinstance(value, str) else None

    def flag(name: str) -> bool | None:
        value = raw.get(name)
        return value if isinstance(value, bool) else None

    events = raw.get("events")
    return SportOut(
        key=raw["key"][:64],
        title=text("title"),
        group=text("group"),
        description=text("description"),
        active=flag("active"),
        has_outrights=flag("has_outrights"),
        events=events if isinstance(events, int) and not isinstance(events, bool) else None,
    )


@tool(output=SportsResult, scope="read", title="Sports with odds", read_only=True, open_world=True)
async def get_sports(
    ctx: ToolContext,
    all: Annotated[bool, Field(description="Also out-of-season sports (The Odds API).")] = False,
) -> SportsResult:
    """The sports odds are available for, with their keys (use the key as `sport` in the other odds
    tools). The Odds API: free (no credits); files source: one sport per <sport_key>.json."""
    fetched = await _service(ctx).sports(all)
    sports = [s for s in (_sport(item) for item in (fetched.data if isinstance(fetched.data, list) else [])) if s]
    return SportsResult(sports=sports, count=len(sports), **_provenance(fetched))


class EventOut(BaseModel):
    id: str
    sport_key: str
    sport_title: str | None
    commence_time: datetime
    home_team: str | None
    away_team: str | None
    started: bool = Field(description="commence_time is in the past (live or finished)")


class EventsResult(Provenance):
    sport: str
    events: list[EventOut]
    count: int


def _event_out(raw: Any, now: datetime) -> EventOut | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("sport_key"), str):
        return None
    commence = to_seconds(raw.get("commence_time"))
    if commence is None:
        return None

    def text(name: str) -> str | None:
        value = raw.get(name)
        return value[:200] if isinstance(value, str) else None

    when = _at(commence)
    return EventOut(
        id=raw["id"][:128],
        sport_key=raw["sport_key"][:64],
        sport_title=text("sport_title"),
        commence_time=when,
        home_team=text("home_team"),
        away_team=text("away_team"),
        started=when <= now,
    )


@tool(output=EventsResult, scope="read", title="Events of a sport", read_only=True, open_world=True)
async def get_events(
    ctx: ToolContext,
    sport: SportArg,
    commence_from: Annotated[OptionalUtcDateTime, Field(description=f"Earliest start ({DATETIME_HELP}).")] = None,
    commence_to: Annotated[OptionalUtcDateTime, Field(description=f"Latest start ({DATETIME_HELP}).")] = None,
) -> EventsResult:
    """Upcoming and live events of a sport with their ids (for get_event_odds), without odds.
    Free on The Odds API (no credits)."""
    _check_window(commence_from, commence_to)
    fetched = await _service(ctx).events(sport, commence_from, commence_to)
    now = datetime.now(UTC)
    raw = fetched.data if isinstance(fetched.data, list) else []
    events = [e for e in (_event_out(item, now) for item in raw) if e]
    return EventsResult(sport=sport, events=events, count=len(events), **_provenance(fetched))


# ---------------------------------------------------------------- get_odds / get_event_odds


class PriceOut(BaseModel):
    name: str
    description: str | None = Field(description="e.g. the player of a player prop")
    point: float | None = Field(description="handicap or total line (spreads, totals, props)")
    price: float | str = Field(description="in the requested odds_format")
    decimal: float


class MarketOut(BaseModel):
    key: str
    lay: bool = Field(description="exchange lay prices (betting against the outcome): not back odds")
    last_update: datetime = Field(description="snapshot time of these prices (the bookmaker's last_update)")
    outcomes: list[PriceOut]


class BookOut(BaseModel):
    key: str
    title: str
    last_update: datetime | None
    markets: list[MarketOut]


class BestOut(BaseModel):
    market: str
    lay: bool
    name: str
    description: str | None
    point: float | None
    price: float | str
    decimal: float
    bookmaker: str
    bookmaker_title: str
    last_update: datetime = Field(description="snapshot time of this price")
    books: int = Field(description="bookmakers quoting this exact outcome (same name and point)")


class EventOddsOut(EventOut):
    bookmakers: list[BookOut]
    best_prices: list[BestOut] = Field(
        description="highest price per outcome across bookmakers, matched by outcome name and identical point"
    )


class OddsResult(BoardProvenance):
    sport: str
    odds_format: str
    events: list[EventOddsOut]
    count: int
    total_events: int = Field(description="events in the answer (count is at most max_events of them)")


def _price_out(o: Any, odds_format: OddsFormat) -> PriceOut:
    return PriceOut(
        name=o.name, description=o.description, point=o.point, price=format_odds(o.price, odds_format), decimal=o.price
    )


def _event_odds_out(parsed: ParsedEvent, odds_format: OddsFormat, now: datetime) -> EventOddsOut:
    event = parsed.odds
    books: dict[str, BookOut] = {}
    for book in event.books:
        out = books.get(book.bookmaker)
        if out is None:
            update = parsed.book_updates.get(book.bookmaker)
            out = books[book.bookmaker] = BookOut(
                key=book.bookmaker,
                title=book.bookmaker_title,
                last_update=_at(update) if update is not None and update == update else None,
                markets=[],
            )
        out.markets.append(
            MarketOut(
                key=book.market,
                lay=book.lay,
                last_update=_at(book.last_update),
                outcomes=[_price_out(o, odds_format) for o in book.outcomes],
            )
        )
    best = [
        BestOut(
            market=b.market,
            lay=is_lay_market(b.market),
            name=b.outcome.name,
            description=b.outcome.description,
            point=b.outcome.point,
            price=format_odds(b.outcome.price, odds_format),
            decimal=b.outcome.price,
            bookmaker=b.bookmaker,
            bookmaker_title=b.bookmaker_title,
            last_update=_at(b.last_update),
            books=b.books,
        )
        for b in best_prices(event)
    ]
    commence = _at(event.commence_time)
    return EventOddsOut(
        id=event.event_id,
        sport_key=event.sport_key,
        sport_title=parsed.sport_title,
        commence_time=commence,
        home_team=event.home_team,
        away_team=event.away_team,
        started=commence <= now,
        bookmakers=list(books.values()),
        best_prices=best,
    )


@tool(output=OddsResult, scope="read", title="Odds of a sport", cost=5, read_only=True, open_world=True)
async def get_odds(
    ctx: ToolContext,
    sport: Annotated[str, Field(pattern=KEY_PATTERN, description="Sport key from get_sports, or 'upcoming'.")],
    regions: RegionsArg = ["us"],  # noqa: B006 - pydantic copies defaults
    markets: Annotated[
        list[FeaturedMarket],
        Field(
            min_length=1, max_length=6, description="h2h (moneyline), spreads, totals, outrights; *_lay: exchange lay"
        ),
    ] = ["h2h"],  # noqa: B006
    bookmakers: BookmakersArg = None,
    odds_format: OddsFormatArg = "decimal",
    commence_from: Annotated[OptionalUtcDateTime, Field(description=f"Earliest start ({DATETIME_HELP}).")] = None,
    commence_to: Annotated[OptionalUtcDateTime, Field(description=f"Latest start ({DATETIME_HELP}).")] = None,
    event_ids: Annotated[list[Annotated[str, Field(pattern=EVENT_ID_PATTERN)]] | None, Field(max_length=50)] = None,
    at: Annotated[
        OptionalUtcDateTime,
        Field(description=f"Historical snapshot at this time (paid plans; costs 10x) ({DATETIME_HELP})."),
    ] = None,
    max_events: Annotated[int, Field(ge=1, le=200, description="At most this many events in the result.")] = 25,
) -> OddsResult:
    """Bookmaker prices for every upcoming and live event of a sport, with the best price of each outcome
    (matched by name and identical point). Costs markets x regions credits on The Odds API (10 bookmakers
    = 1 region; 0 when no events; cached 30 s). Every answer is stored for analyze_odds_movement."""
    _check_window(commence_from, commence_to)
    request = OddsRequest(
        sport, _unique(list(regions)), _unique(list(markets)), _unique(bookmakers), _unique(event_ids),
        commence_from, commence_to, at,
    )  # fmt: skip
    board = await _service(ctx).odds(request)
    now = datetime.now(UTC)
    events = sorted(board.events, key=lambda e: e.odds.commence_time)
    shown = [_event_odds_out(e, odds_format, now) for e in events[:max_events]]
    return OddsResult(
        sport=sport,
        odds_format=odds_format,
        events=shown,
        count=len(shown),
        total_events=len(events),
        **_board_provenance(board),
    )


class EventOddsResult(BoardProvenance):
    sport: str
    odds_format: str
    event: EventOddsOut


@tool(output=EventOddsResult, scope="read", title="Odds of one event", cost=5, read_only=True, open_world=True)
async def get_event_odds(
    ctx: ToolContext,
    sport: SportArg,
    event_id: EventIdArg,
    markets: Annotated[
        list[Key],
        Field(
            min_length=1,
            max_length=50,
            description="Any market keys: h2h, spreads, totals, alternate_spreads, player_points, btts, ...",
        ),
    ] = ["h2h"],  # noqa: B006
    regions: RegionsArg = ["us"],  # noqa: B006
    bookmakers: BookmakersArg = None,
    odds_format: OddsFormatArg = "decimal",
    at: Annotated[
        OptionalUtcDateTime, Field(description=f"Historical snapshot (paid plans; 10x credits) ({DATETIME_HELP}).")
    ] = None,
) -> EventOddsResult:
    """One event's prices in any markets (player props and alternate lines included), with best prices.
    Costs markets returned x regions credits on The Odds API. Stored for analyze_odds_movement."""
    request = OddsRequest(sport, _unique(list(regions)), _unique(markets), _unique(bookmakers), at=at)
    board = await _service(ctx).event_odds(event_id, request)
    if not board.events:
        raise ValidationError(
            f"the answer for event {event_id} is unusable: {board.skip_reasons[:3]}", argument="event_id"
        )
    out = _event_odds_out(board.events[0], odds_format, datetime.now(UTC))
    return EventOddsResult(sport=sport, odds_format=odds_format, event=out, **_board_provenance(board))


# ---------------------------------------------------------------- get_scores


class TeamScore(BaseModel):
    name: str
    score: str | None


class GameOut(BaseModel):
    id: str
    sport_key: str
    commence_time: datetime
    completed: bool
    home_team: str | None
    away_team: str | None
    scores: list[TeamScore] | None = Field(description="null before the game starts")
    last_update: datetime | None = Field(description="when the score was last updated")


class ScoresResult(Provenance):
    sport: str
    games: list[GameOut]
    count: int


def _game(raw: Any) -> GameOut | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("sport_key"), str):
        return None
    commence = to_seconds(raw.get("commence_time"))
    if commence is None:
        return None
    scores = None
    if isinstance(raw.get("scores"), list):
        scores = [
            TeamScore(name=s["name"][:200], score=None if s.get("score") is None else str(s.get("score"))[:20])
            for s in raw["scores"]
            if isinstance(s, dict) and isinstance(s.get("name"), str)
        ]
    updated = to_seconds(raw.get("last_update"))
    return GameOut(
        id=raw["id"][:128],
        sport_key=raw["sport_key"][:64],
        commence_time=_at(commence),
        completed=raw.get("completed") is True,
        home_team=raw["home_team"][:200] if isinstance(raw.get("home_team"), str) else None,
        away_team=raw["away_team"][:200] if isinstance(raw.get("away_team"), str) else None,
        scores=scores,
        last_update=_at(updated) if updated is not None else None,
    )


@tool(output=ScoresResult, scope="read", title="Scores", cost=2, read_only=True, open_world=True)
async def get_scores(
    ctx: ToolContext,
    sport: SportArg,
    days_from: Annotated[
        int | None, Field(ge=1, le=3, description="Also completed games of the last 1-3 days (2 credits instead of 1).")
    ] = None,
) -> ScoresResult:
    """Live, upcoming and (with days_from) recently completed games of a sport with their scores.
    Costs 1 credit, 2 with days_from. Files source: <sport_key>.scores.json."""
    fetched = await _service(ctx).scores(sport, days_from)
    raw = fetched.data if isinstance(fetched.data, list) else []
    games = [g for g in (_game(item) for item in raw) if g]
    return ScoresResult(sport=sport, games=games, count=len(games), **_provenance(fetched))


# ---------------------------------------------------------------- find_arbitrage


class LegOut(BaseModel):
    name: str
    description: str | None
    point: float | None
    bookmaker: str
    bookmaker_title: str
    price: float = Field(description="decimal odds quoted")
    commission: float
    effective_price: float = Field(description="1 + (price - 1)(1 - commission)")
    last_update: datetime = Field(description="snapshot time of this price")
    stake: Decimal
    payout: Decimal = Field(description="stake x effective_price if this outcome wins")


class ArbitrageOut(BaseModel):
    event_id: str
    sport_key: str
    commence_time: datetime
    home_team: str | None
    away_team: str | None
    market: str
    implied_sum: float = Field(description="S = sum(1/d_i) over the best effective prices; < 1 is an arbitrage")
    theoretical_profit_pct: float = Field(description="(1/S - 1) x 100 before rounding the stakes")
    legs: list[LegOut]
    total_staked: Decimal
    guaranteed_payout: Decimal = Field(description="the smallest payout over the outcomes")
    profit: Decimal = Field(description="guaranteed_payout - total_staked, after rounding the stakes")
    profit_pct: Decimal


class ExclusionOut(BaseModel):
    event_id: str
    market: str
    reason: Literal["started", "stale_quote", "incomplete_outcome_set", "lay_market"]
    detail: str
    bookmaker: str | None


class ClosestOut(BaseModel):
    event_id: str
    market: str
    implied_sum: float
    margin_pct: float = Field(description="(S - 1) x 100: how far from an arbitrage")


class ArbitrageResult(BoardProvenance):
    sport: str
    as_of: datetime = Field(description="started events and stale quotes are judged at this time")
    total_stake: Decimal
    stake_unit: Decimal
    max_quote_age_s: int | None
    commission: dict[str, Decimal]
    opportunities: list[ArbitrageOut]
    count: int
    sets_checked: int = Field(description="complete outcome sets priced")
    excluded_counts: dict[str, int] = Field(description="how many were left out, by reason")
    exclusions: list[ExclusionOut] = Field(description="the first 50 exclusions with details")
    closest: list[ClosestOut] = Field(description="the 5 complete sets with the lowest S, arbitrage or not")


@tool(output=ArbitrageResult, scope="read", title="Find arbitrage", cost=5, read_only=True, open_world=True)
async def find_arbitrage(
    ctx: ToolContext,
    sport: Annotated[str, Field(pattern=KEY_PATTERN, description="Sport key from get_sports, or 'upcoming'.")],
    regions: RegionsArg = ["us"],  # noqa: B006
    markets: Annotated[list[BackMarket], Field(min_length=1, max_length=3, description="h2h, spreads, totals")] = [  # noqa: B006
        "h2h"
    ],
    total_stake: Annotated[Money, Field(description="Money to split over the outcomes of each arbitrage.")] = Decimal(
        1000
    ),
    stake_unit: Annotated[StakeUnit, Field(description="Stakes are rounded to multiples of this (e.g. 1 or 0.01).")] = (
        Decimal(1)
    ),
    min_profit_pct: Annotated[
        Percent, Field(description="Only arbitrages whose profit after rounding reaches this %.")
    ] = (Decimal(0)),
    max_quote_age_s: MaxAgeArg = 600,
    commission: Annotated[
        dict[Key, Rate] | None,
        Field(
            max_length=100, description="Commission on net winnings per bookmaker key, e.g. {'betfair_ex_uk': 0.05}."
        ),
    ] = None,
    bookmakers: BookmakersArg = None,
    as_of: Annotated[
        OptionalUtcDateTime,
        Field(description=f"Judge started events and stale quotes at this time (default now) ({DATETIME_HELP})."),
    ] = None,
    max_results: Annotated[int, Field(ge=1, le=200)] = 20,
) -> ArbitrageResult:
    """Arbitrages across bookmakers: for each event and market, the best price of every outcome (matched
    by name and identical point, after per-book commission); a complete set with S = sum(1/d_i) < 1
    guarantees T(1/S - 1). Stakes T(1/d_i)/S are rounded to stake_unit and the profit recomputed.
    Excluded with reasons: started events, stale quotes, incomplete outcome sets, lay markets.
    Costs markets x regions credits (one odds request)."""
    now = as_of or datetime.now(UTC)
    rates = dict(commission or {})
    query = ArbitrageQuery(
        markets=frozenset(markets),
        now=now.timestamp(),
        total_stake=total_stake,
        stake_unit=stake_unit,
        max_quote_age_s=max_quote_age_s,
        min_profit_pct=min_profit_pct,
        commission={k: float(v) for k, v in rates.items()},
        max_results=max_results,
    )
    if stake_unit > total_stake:
        raise ValidationError("stake_unit is larger than total_stake", argument="stake_unit")
    request = OddsRequest(sport, _unique(list(regions)), _unique(list(markets)), _unique(bookmakers))
    board, report = await _service(ctx).arbitrage(request, query)
    opportunities = [
        ArbitrageOut(
            event_id=a.event.event_id,
            sport_key=a.event.sport_key,
            commence_time=_at(a.event.commence_time),
            home_team=a.event.home_team,
            away_team=a.event.away_team,
            market=a.market,
            implied_sum=round(a.implied_sum, 8),
            theoretical_profit_pct=round(a.theoretical_profit_pct, 6),
            legs=[
                LegOut(
                    name=leg.outcome.name,
                    description=leg.outcome.description,
                    point=leg.outcome.point,
                    bookmaker=leg.bookmaker,
                    bookmaker_title=leg.bookmaker_title,
                    price=leg.outcome.price,
                    commission=leg.commission,
                    effective_price=round(leg.effective_price, 8),
                    last_update=_at(leg.last_update),
                    stake=leg.stake,
                    payout=leg.payout,
                )
                for leg in a.legs
            ],
            total_staked=a.total_staked,
            guaranteed_payout=a.guaranteed_payout,
            profit=a.profit,
            profit_pct=a.profit_pct,
        )
        for a in report.opportunities
    ]
    return ArbitrageResult(
        sport=sport,
        as_of=now,
        total_stake=total_stake,
        stake_unit=stake_unit,
        max_quote_age_s=max_quote_age_s,
        commission=rates,
        opportunities=opportunities,
        count=len(opportunities),
        sets_checked=report.sets_checked,
        excluded_counts=report.excluded_counts,
        exclusions=[ExclusionOut(**asdict(e)) for e in report.exclusions],
        closest=[
            ClosestOut(
                event_id=c.event_id,
                market=c.market,
                implied_sum=round(c.implied_sum, 8),
                margin_pct=round((c.implied_sum - 1) * 100, 6),
            )
            for c in report.closest
        ],
        **_board_provenance(board),
    )


# ---------------------------------------------------------------- compare_bookmaker_margins


class MarginOut(BaseModel):
    bookmaker: str
    title: str
    books: int = Field(description="events measured (the bookmaker's own complete books)")
    mean_overround_pct: float = Field(description="mean of (sum(1/d_i) - 1) x 100")
    median_overround_pct: float
    min_overround_pct: float
    max_overround_pct: float


class MarginsResult(BoardProvenance):
    sport: str
    market: str
    events: int
    bookmakers: list[MarginOut] = Field(description="lowest mean margin first")


@tool(output=MarginsResult, scope="read", title="Bookmaker margins", cost=5, read_only=True, open_world=True)
async def compare_bookmaker_margins(
    ctx: ToolContext,
    sport: SportArg,
    market: Annotated[FeaturedMarket, Field(description="The market to compare (h2h, spreads, totals, ...).")] = "h2h",
    regions: RegionsArg = ["us"],  # noqa: B006
    bookmakers: BookmakersArg = None,
) -> MarginsResult:
    """Each bookmaker's margin (overround = sum of 1/odds - 1) on a market over every event it prices,
    lowest first: where prices are fairest. Costs 1 x regions credits (one odds request)."""
    request = OddsRequest(sport, _unique(list(regions)), (market,), _unique(bookmakers))
    board, margins = await _service(ctx).margins(request)
    out = [
        MarginOut(
            bookmaker=m.bookmaker,
            title=m.bookmaker_title,
            books=m.books,
            mean_overround_pct=round(m.mean_overround * 100, 6),
            median_overround_pct=round(m.median_overround * 100, 6),
            min_overround_pct=round(m.min_overround * 100, 6),
            max_overround_pct=round(m.max_overround * 100, 6),
        )
        for m in margins
    ]
    return MarginsResult(
        sport=sport, market=market, events=len(board.events), bookmakers=out, **_board_provenance(board)
    )


# ---------------------------------------------------------------- analyze_odds_movement


class MoveOut(BaseModel):
    from_price: float
    to_price: float
    at: datetime = Field(description="when the new price was first seen (its last_update)")
    probability_change: float = Field(description="1/to - 1/from: positive means the outcome got shorter")


class SeriesOut(BaseModel):
    bookmaker: str
    market: str
    name: str
    description: str | None
    point: float | None
    opening: float
    opening_at: datetime
    latest: float
    latest_at: datetime
    changes: int
    probability_change: float = Field(description="1/latest - 1/opening")
    biggest_move: MoveOut | None


class MovementResult(BaseModel):
    event_id: str
    sport_key: str
    commence_time: datetime
    source: str = Field(description="stored snapshots of: theoddsapi and/or files")
    prices_read: int
    truncated: bool
    first_seen: datetime
    last_seen: datetime
    series_count: int
    series: list[SeriesOut] = Field(description="per bookmaker and outcome, biggest probability change first")
    quota: QuotaOut | None = Field(description="latest known credits (no upstream request is made)")


@tool(output=MovementResult, scope="read", title="Odds movement", cost=2, read_only=True)
async def analyze_odds_movement(
    ctx: ToolContext,
    event_id: EventIdArg,
    market: Annotated[Key | None, Field(description="Only this market (h2h, spreads, ...).")] = None,
    max_series: Annotated[int, Field(ge=1, le=500, description="At most this many series in the result.")] = 50,
) -> MovementResult:
    """How an event's prices moved, from the snapshots stored by get_odds / get_event_odds: per bookmaker
    and outcome the opening and latest price, the number of changes and the biggest single move (by
    implied probability) and when it happened. Reads storage only: no credits."""
    service = _service(ctx)
    movement = await service.movement(event_id, market)
    quota = None
    if service.configured == "theoddsapi":
        quota = service.source().last_quota()

    def move(m: Any) -> MoveOut | None:
        return (
            None
            if m is None
            else MoveOut(
                from_price=m.from_price,
                to_price=m.to_price,
                at=_at(m.at),
                probability_change=round(m.probability_change, 8),
            )
        )

    series = [
        SeriesOut(
            bookmaker=s.bookmaker, market=s.market, name=s.name, description=s.description, point=s.point,
            opening=s.opening, opening_at=_at(s.opening_at), latest=s.latest, latest_at=_at(s.latest_at),
            changes=s.changes, probability_change=round(s.probability_change, 8), biggest_move=move(s.biggest_move),
        )
        for s in movement.series[:max_series]
    ]  # fmt: skip
    return MovementResult(
        event_id=movement.event_id,
        sport_key=movement.sport_key,
        commence_time=movement.commence_time,
        source=",".join(movement.sources),
        prices_read=movement.prices_read,
        truncated=movement.truncated,
        first_seen=movement.first_seen,
        last_seen=movement.last_seen,
        series_count=len(movement.series),
        series=series,
        quota=_quota(quota),
    )


# ---------------------------------------------------------------- math: calculate_kelly / convert_odds / remove_margin


class KellyResult(BaseModel):
    probability: float
    decimal_odds: float
    implied_probability: float = Field(description="1/d")
    edge: float = Field(description="p - 1/d")
    expected_value_per_unit: float = Field(description="p x d - 1")
    full_kelly: float = Field(description="f* = (p d - 1)/(d - 1), never negative (0: no bet)")
    fraction: float
    max_fraction: float
    applied_fraction: float = Field(description="min(fraction x f*, max_fraction)")
    capped: bool
    bankroll: Decimal
    stake: Decimal = Field(description="bankroll x applied_fraction, rounded down to cents")
    expected_profit: Decimal = Field(description="stake x (p d - 1)")
    expected_log_growth: float = Field(description="p ln(1 + f(d - 1)) + (1 - p) ln(1 - f) at the applied fraction")
    bet: bool


@tool(output=KellyResult, scope="read", title="Kelly stake", read_only=True, idempotent=True)
async def calculate_kelly(
    ctx: ToolContext,
    probability: Annotated[Probability, Field(description="Your probability that the outcome wins, in (0, 1).")],
    odds: OddsValue,
    odds_format: Annotated[
        Literal["decimal", "american", "fractional"], Field(description="How `odds` is written.")
    ] = "decimal",
    bankroll: Annotated[Money, Field(description="Money available for betting.")] = Decimal(1000),
    fraction: Annotated[Share, Field(description="Fractional Kelly lambda in (0, 1]; 0.5 = half Kelly.")] = Decimal(1),
    max_fraction: Annotated[Share, Field(description="Never stake more than this share of the bankroll.")] = Decimal(
        "0.25"
    ),
) -> KellyResult:
    """Kelly staking for a bet at decimal odds d with win probability p: f* = (p d - 1)/(d - 1) (0 when
    there is no edge), times the fraction, capped; stake = bankroll x f. Also the expected value per
    unit (p d - 1) and the expected log growth. Pure math: no odds source needed."""
    d = _odds(odds, odds_format, "odds")
    p = float(probability)
    try:
        kelly = kelly_stake(p, d, bankroll, float(fraction), float(max_fraction))
    except DomainValueError as error:
        raise _domain(error) from None
    return KellyResult(
        probability=p,
        decimal_odds=d,
        implied_probability=1 / d,
        edge=p - 1 / d,
        expected_value_per_unit=kelly.expected_value,
        full_kelly=kelly.full_kelly,
        fraction=float(fraction),
        max_fraction=float(max_fraction),
        applied_fraction=kelly.applied_fraction,
        capped=kelly.capped,
        bankroll=bankroll,
        stake=kelly.stake,
        expected_profit=(kelly.stake * Decimal(repr(kelly.expected_value))).quantize(Decimal("0.01")),
        expected_log_growth=kelly.expected_log_growth,
        bet=kelly.stake > 0,
    )


class ConvertResult(BaseModel):
    input: str
    from_format: str
    decimal: float
    american: float = Field(description="+ means profit per 100 staked, - means stake needed to win 100")
    fractional: str = Field(description="n/m closest to d - 1 with m <= 100")
    fractional_exact: bool
    implied_probability: float = Field(description="1/d (includes the bookmaker's margin)")


@tool(output=ConvertResult, scope="read", title="Convert odds", read_only=True, idempotent=True)
async def convert_odds(
    ctx: ToolContext,
    value: OddsValue,
    from_format: Annotated[OddsFormat, Field(description="decimal, american, fractional or probability")] = "decimal",
) -> ConvertResult:
    """One price in every format: decimal d, American (d >= 2: +(d-1)x100, else -100/(d-1)), fractional
    n/m = d - 1, implied probability 1/d. Pure math."""
    d = _odds(value, from_format, "value")
    fraction = fraction_from_decimal(d)
    return ConvertResult(
        input=str(value)[:40],
        from_format=from_format,
        decimal=round(d, 6),
        american=round(float(format_odds(d, "american")), 2),
        fractional=f"{fraction.numerator}/{fraction.denominator}",
        fractional_exact=abs(float(fraction) - (d - 1)) < 1e-9,
        implied_probability=round(1 / d, 9),
    )


class FairOutcome(BaseModel):
    decimal_odds: float
    implied_probability: float = Field(description="1/d, margin included")
    fair_probability: float
    fair_odds: float = Field(description="1 / fair_probability")


class MarginResult(BaseModel):
    method: Literal["proportional", "shin"]
    booksum: float = Field(description="S = sum(1/d_i)")
    overround_pct: float = Field(description="(S - 1) x 100: the bookmaker's margin")
    outcomes: list[FairOutcome] = Field(description="in the order given")
    shin_z: float | None = Field(description="Shin's estimated share of insider money")
    iterations: int | None
    converged: bool


@tool(output=MarginResult, scope="read", title="Remove the margin", read_only=True, idempotent=True)
async def remove_margin(
    ctx: ToolContext,
    odds: Annotated[
        list[OddsValue], Field(min_length=2, max_length=100, description="One bookmaker's prices on every outcome.")
    ],
    method: Annotated[
        Literal["proportional", "shin"],
        Field(description="proportional: p_i = (1/d_i)/S; shin: Shin's insider model (needs S > 1)."),
    ] = "proportional",
    odds_format: Annotated[
        Literal["decimal", "american", "fractional"], Field(description="How the odds are written.")
    ] = "decimal",
) -> MarginResult:
    """Fair probabilities of a complete book with the bookmaker's margin removed: proportionally
    (p_i = (1/d_i)/S) or by Shin's method (longshots lose more to the margin), with the overround
    S - 1 and the fair odds 1/p_i. Pure math."""
    prices = [_odds(v, odds_format, f"odds[{i}]") for i, v in enumerate(odds)]
    z: float | None = None
    iterations: int | None = None
    converged = True
    try:
        if method == "shin":
            result = shin_probabilities(prices)
            fair, z, iterations, converged = result.probabilities, result.z, result.iterations, result.converged
        else:
            fair = proportional_probabilities(prices)
    except DomainValueError as error:
        raise _domain(error) from None
    s = booksum(prices)
    return MarginResult(
        method=method,
        booksum=round(s, 12),
        overround_pct=round((s - 1) * 100, 9),
        outcomes=[
            FairOutcome(decimal_odds=d, implied_probability=1 / d, fair_probability=p, fair_odds=1 / p)
            for d, p in zip(prices, fair, strict=True)
        ],
        shin_z=z,
        iterations=iterations,
        converged=converged,
    )


# ---------------------------------------------------------------- odds_quota


class QuotaResult(BaseModel):
    source: Literal["theoddsapi", "files"]
    quota: QuotaOut | None = Field(description="null: the files source uses no credits")
    checked_upstream: bool = Field(description="a free /v4/sports request was made to read it now")
    note: str


@tool(output=QuotaResult, scope="read", title="Odds API quota", read_only=True, open_world=True)
async def odds_quota(
    ctx: ToolContext,
    refresh: Annotated[bool, Field(description="Read it now with a free request instead of the latest known.")] = False,
) -> QuotaResult:
    """The Odds API usage credits: remaining, used since the plan's reset, and what the latest request cost.
    From the latest answer, or read now with a free request (refresh, or when none is known yet)."""
    service = _service(ctx)
    quota, checked = await service.quota(refresh)
    source = service.source().name
    if source == "files":
        note = "the files source reads saved answers and uses no credits"
    elif quota is None:
        note = "The Odds API sent no quota headers"
    else:
        note = "credits reset with the plan's billing cycle; odds cost markets x regions, sports and events are free"
    return QuotaResult(source=source, quota=_quota(quota), checked_upstream=checked, note=note)


TOOLS = [
    get_sports,
    get_events,
    get_odds,
    get_event_odds,
    get_scores,
    find_arbitrage,
    compare_bookmaker_margins,
    analyze_odds_movement,
    calculate_kelly,
    convert_odds,
    remove_margin,
    odds_quota,
]
