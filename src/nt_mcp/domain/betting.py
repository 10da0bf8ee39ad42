"""Betting math on bookmaker odds: conversions, margins, fair probabilities, best prices, arbitrage, Kelly.

Conventions (every function below follows them):

- Odds are **decimal odds** ``d`` (the total return per unit staked, stake included; ``d > 1``) unless a
  name says otherwise. American odds ``A``: ``A >= +100`` pays ``A`` per 100 staked (``d = 1 + A/100``),
  ``A <= -100`` needs ``|A|`` staked to win 100 (``d = 1 + 100/|A|``). Fractional odds ``n/m`` pay ``n``
  per ``m`` staked (``d = 1 + n/m``). Implied probability ``pi = 1/d``.
- A *book* is the set of prices one bookmaker offers on the mutually exclusive, exhaustive outcomes of one
  market. Its *booksum* is ``S = sum(1/d_i)``; its *overround* (the bookmaker's margin) is ``S - 1``.
- Times are POSIX seconds (UTC). Money is `Decimal`; probabilities and odds are floats.

Errors are `DomainValueError` naming the argument; nothing here does I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Literal

from nt_mcp.domain.errors import DomainValueError

OddsFormat = Literal["decimal", "american", "fractional", "probability"]
MarginMethod = Literal["proportional", "shin"]
ODDS_FORMATS: tuple[OddsFormat, ...] = ("decimal", "american", "fractional", "probability")
MAX_DECIMAL_ODDS = 1_000_001.0  # American +100,000,000 would be beyond any real price
MAX_FRACTION_DENOMINATOR = 100


# ---------------------------------------------------------------- conversions


def decimal_from_american(american: float) -> float:
    """``d = 1 + A/100`` for ``A >= 100``; ``d = 1 + 100/|A|`` for ``A <= -100``. Values in (-100, 100) are not odds."""
    if not math.isfinite(american) or -100 < american < 100:
        raise DomainValueError("odds", f"American odds are <= -100 or >= +100, got {american:g}")
    return 1 + american / 100 if american > 0 else 1 + 100 / -american


def american_from_decimal(d: float) -> float:
    """``A = (d - 1)*100`` when ``d >= 2`` (positive), else ``A = -100/(d - 1)`` (negative)."""
    check_decimal(d)
    return (d - 1) * 100 if d >= 2 else -100 / (d - 1)


def fraction_from_decimal(d: float, max_denominator: int = MAX_FRACTION_DENOMINATOR) -> Fraction:
    """The fractional odds ``n/m`` closest to ``d - 1`` with ``m <= max_denominator`` (exact when it exists)."""
    check_decimal(d)
    return Fraction(d - 1).limit_denominator(max_denominator)


def check_decimal(d: float, argument: str = "odds") -> float:
    """``d`` itself, or DomainValueError unless ``1 < d <= MAX_DECIMAL_ODDS``."""
    if not math.isfinite(d) or d <= 1 or d > MAX_DECIMAL_ODDS:
        raise DomainValueError(argument, f"decimal odds must be greater than 1 and at most {MAX_DECIMAL_ODDS:g}")
    return d


def parse_odds(value: str | float | Decimal, odds_format: OddsFormat, argument: str = "odds") -> float:
    """One price in ``odds_format`` as decimal odds.

    Accepted: decimal ``2.5``; American ``+150`` / ``-200``; fractional ``3/2``, ``evens``/``evs``;
    probability ``0.4`` (the price is ``1/p``, 0 < p < 1).
    """
    text = str(value).strip().lower()
    if len(text) > 40:
        raise DomainValueError(argument, "a price has at most 40 characters")
    try:
        if odds_format == "fractional":
            if text in {"evens", "evs", "even"}:
                return 2.0
            numerator, slash, denominator = text.partition("/")
            if not slash:
                raise ValueError
            n, m = Fraction(numerator.strip()), Fraction(denominator.strip())
            if n <= 0 or m <= 0:
                raise DomainValueError(argument, f"fractional odds need a positive n/m, got {text!r}")
            return check_decimal(1 + float(n / m), argument)
        number = float(Decimal(text))
    except DomainValueError:
        raise
    except (ValueError, ArithmeticError, ZeroDivisionError):
        hint = "like 5/2" if odds_format == "fractional" else "a number"
        raise DomainValueError(argument, f"{text[:24]!r} is not {odds_format} odds ({hint})") from None
    if odds_format == "decimal":
        return check_decimal(number, argument)
    if odds_format == "american":
        try:
            return check_decimal(decimal_from_american(number), argument)
        except DomainValueError as error:
            raise DomainValueError(argument, error.message) from None
    if not math.isfinite(number) or not 0 < number < 1:
        raise DomainValueError(argument, f"a probability lies strictly between 0 and 1, got {text[:24]}")
    return check_decimal(1 / number, argument)


def format_odds(d: float, odds_format: OddsFormat) -> float | str:
    """Decimal odds ``d`` shown in ``odds_format``: decimal and American rounded to 4 and 2 places,
    fractional as ``"n/m"`` (closest with m <= 100), probability ``1/d`` to 6 places."""
    if odds_format == "decimal":
        return round(d, 4)
    if odds_format == "american":
        return round(american_from_decimal(d), 2)
    if odds_format == "fractional":
        f = fraction_from_decimal(d)
        return f"{f.numerator}/{f.denominator}"
    return round(1 / d, 6)


# ---------------------------------------------------------------- margins and fair probabilities


def booksum(prices: Sequence[float]) -> float:
    """``S = sum(1/d_i)``."""
    return math.fsum(1 / check_decimal(d) for d in prices)


def overround(prices: Sequence[float]) -> float:
    """The bookmaker's margin ``S - 1`` (0.05 = 5%); negative means the prices add up to less than 1."""
    return booksum(prices) - 1


def proportional_probabilities(prices: Sequence[float]) -> list[float]:
    """Margin removed proportionally (the multiplicative method): ``p_i = (1/d_i) / S``."""
    _check_book(prices)
    s = booksum(prices)
    return [(1 / d) / s for d in prices]


@dataclass(frozen=True)
class ShinResult:
    probabilities: list[float]
    z: float  # the estimated share of insider money
    iterations: int
    converged: bool


def shin_probabilities(prices: Sequence[float], max_iterations: int = 1000) -> ShinResult:
    """Margin removed by Shin's method (Shin 1991, 1993; Jullien & Salanie 1994), computed with the
    ``shin`` package (Maurice Berk).

    With ``pi_i = 1/d_i`` and booksum ``S``, the fair probabilities are
    ``p_i(z) = (sqrt(z^2 + 4(1 - z) pi_i^2 / S) - z) / (2(1 - z))`` where the insider share ``z`` solves
    ``sum p_i(z) = 1``: in closed form for two outcomes, otherwise by the fixed-point iteration
    ``z <- (sum_i sqrt(z^2 + 4(1 - z) pi_i^2 / S) - 2) / (n - 2)`` from ``z = 0``. Longshots lose more
    of their price to the margin than favourites. The method needs a positive margin (``S > 1``);
    ``S = 1`` returns the implied probabilities unchanged.
    """
    import shin  # small compiled package; imported here so the math tools load it only when asked

    _check_book(prices)
    s = booksum(prices)
    if s < 1:
        raise DomainValueError("odds", f"Shin's method needs a book with a margin (sum of 1/odds > 1), got {s:.6f}")
    if s == 1:
        return ShinResult([1 / d for d in prices], 0.0, 0, True)
    try:
        details = shin.calculate_implied_probabilities(list(prices), max_iterations=max_iterations, full_output=True)
    except (ArithmeticError, ValueError):
        details = None
    probabilities = list(details.implied_probabilities) if details is not None else []
    if not probabilities or not all(0 <= p <= 1 for p in probabilities) or abs(math.fsum(probabilities) - 1) > 1e-6:
        raise DomainValueError(
            "odds", f"Shin's method finds no solution for this book (sum of 1/odds = {s:.6f}); use proportional"
        )
    assert details is not None
    iterations = int(details.iterations)
    converged = iterations < max_iterations and details.delta <= 1e-12
    return ShinResult(probabilities, float(details.z), iterations, converged)


def fair_probabilities(prices: Sequence[float], method: MarginMethod) -> list[float]:
    """Fair probabilities of a book by ``method`` (proportional or shin)."""
    return proportional_probabilities(prices) if method == "proportional" else shin_probabilities(prices).probabilities


def _check_book(prices: Sequence[float]) -> None:
    if len(prices) < 2:
        raise DomainValueError("odds", "a book needs the prices of at least 2 outcomes")
    for d in prices:
        check_decimal(d)


# ---------------------------------------------------------------- arbitrage and staking


def effective_odds(d: float, commission: float) -> float:
    """Odds after a commission ``c`` charged on net winnings (as exchanges do): ``1 + (d - 1)(1 - c)``."""
    if not 0 <= commission < 1:
        raise DomainValueError("commission", f"commission is a rate in [0, 1), got {commission:g}")
    return 1 + (d - 1) * (1 - commission)


def implied_sum(prices: Sequence[float]) -> Fraction:
    """``S = sum(1/d_i)``, exactly (each float price taken as the exact number it stores)."""
    return sum((1 / Fraction(d) for d in prices), Fraction(0))


def arbitrage_stakes(prices: Sequence[float], total: Fraction | Decimal | int) -> list[Fraction]:
    """Stakes that return the same on every outcome: ``s_i = T (1/d_i) / S``. Each returns ``T/S``,
    so the guaranteed profit is ``T (1/S - 1)``: positive exactly when ``S < 1`` (an arbitrage)."""
    s = implied_sum(prices)
    t = Fraction(total)
    return [t / Fraction(d) / s for d in prices]


def guaranteed_profit(prices: Sequence[float], total: Fraction | Decimal | int) -> Fraction:
    """``T (1/S - 1)`` for the stakes of `arbitrage_stakes` (exact)."""
    return Fraction(total) * (1 / implied_sum(prices) - 1)


@dataclass(frozen=True)
class RoundedStakes:
    stakes: list[Decimal]  # multiples of the unit
    payouts: list[Decimal]  # stake_i * d_i, rounded down to cents
    total_staked: Decimal
    profit: Decimal  # min(payouts) - total_staked: what is guaranteed after rounding
    profit_pct: Decimal  # profit / total_staked * 100, 4 places


def round_stakes(prices: Sequence[float], total: Decimal, unit: Decimal) -> RoundedStakes:
    """`arbitrage_stakes` rounded to multiples of ``unit`` (half to even), then the payouts
    ``stake_i * d_i`` (rounded down to cents, as bookmakers pay) and the guaranteed profit
    ``min(payouts) - sum(stakes)`` recomputed from the rounded stakes (rounding can turn a thin edge
    into a loss)."""
    if unit <= 0:
        raise DomainValueError("stake_unit", "the stake unit must be positive")
    stakes = []
    for raw in arbitrage_stakes(prices, total):
        units = (Decimal(raw.numerator) / Decimal(raw.denominator) / unit).quantize(Decimal(1), ROUND_HALF_EVEN)
        stakes.append(units * unit)
    cent = Decimal("0.01")
    payouts = [(stake * Decimal(repr(d))).quantize(cent, ROUND_DOWN) for stake, d in zip(stakes, prices, strict=True)]
    staked = sum(stakes, Decimal(0))
    profit = min(payouts) - staked
    pct = (profit / staked * 100).quantize(Decimal("0.0001")) if staked > 0 else Decimal(0)
    return RoundedStakes(stakes, payouts, staked, profit, pct)


def expected_value(p: float, d: float) -> float:
    """Expected profit per unit staked: ``p d - 1``."""
    return p * d - 1


def kelly_fraction(p: float, d: float) -> float:
    """Full Kelly share of the bankroll: ``f* = (p d - 1)/(d - 1)``, never negative (0 = no bet)."""
    _check_probability(p)
    check_decimal(d)
    return max(0.0, (p * d - 1) / (d - 1))


def log_growth(p: float, d: float, f: float) -> float:
    """Expected log growth of the bankroll betting a share ``f`` (0 <= f < 1):
    ``g(f) = p ln(1 + f(d - 1)) + (1 - p) ln(1 - f)``. `kelly_fraction` maximises it."""
    return p * math.log1p(f * (d - 1)) + (1 - p) * math.log1p(-f)


@dataclass(frozen=True)
class KellyStake:
    full_kelly: float  # f*
    applied_fraction: float  # min(fraction * f*, max_fraction)
    capped: bool
    stake: Decimal  # bankroll * applied_fraction, rounded down to 0.01
    expected_value: float  # per unit staked
    expected_log_growth: float  # g(applied_fraction)


def kelly_stake(p: float, d: float, bankroll: Decimal, fraction: float = 1.0, max_fraction: float = 1.0) -> KellyStake:
    """Kelly staking: ``f = min(lambda f*, cap)``, stake = bankroll x f (rounded down to cents)."""
    if not 0 < fraction <= 1:
        raise DomainValueError("fraction", "the Kelly fraction lies in (0, 1]")
    if not 0 < max_fraction <= 1:
        raise DomainValueError("max_fraction", "the cap lies in (0, 1]")
    full = kelly_fraction(p, d)
    scaled = fraction * full
    applied = min(scaled, max_fraction)
    stake = (bankroll * Decimal(repr(applied))).quantize(Decimal("0.01"), ROUND_DOWN)
    return KellyStake(full, applied, scaled > max_fraction, stake, expected_value(p, d), log_growth(p, d, applied))


def _check_probability(p: float) -> None:
    if not math.isfinite(p) or not 0 < p < 1:
        raise DomainValueError("probability", "a probability lies strictly between 0 and 1")


# ---------------------------------------------------------------- odds boards: events, books, best prices

OutcomeKey = tuple[str, str | None, float | None]  # (name, description, point)


class Outcome:
    """One priced outcome. Its identity ``key`` is (name, description, point): never its position in a list.

    A plain slotted class rather than a dataclass: a board holds hundreds of thousands of these and a
    frozen dataclass costs ~8x more to build. Treat instances as immutable."""

    __slots__ = ("description", "key", "name", "point", "price")

    def __init__(self, name: str, price: float, point: float | None = None, description: str | None = None) -> None:
        self.name = name
        self.price = price  # decimal odds
        self.point = point  # the handicap or total line (spreads, totals, props)
        self.description = description  # e.g. the player of a player prop
        self.key: OutcomeKey = (name, description, point)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and (self.key, self.price) == (other.key, other.price)

    def __hash__(self) -> int:
        return hash((self.key, self.price))

    def __repr__(self) -> str:
        return f"Outcome({self.name!r}, {self.price!r}, point={self.point!r}, description={self.description!r})"


class BookMarket:
    """One bookmaker's prices on one market of one event, as of ``last_update``; ``signature`` is the set
    of its outcome keys (a line of a spread or total is its own signature). Treat as immutable."""

    __slots__ = ("bookmaker", "bookmaker_title", "last_update", "market", "outcomes", "signature")

    def __init__(
        self, bookmaker: str, market: str, last_update: float, outcomes: tuple[Outcome, ...], bookmaker_title: str = ""
    ) -> None:
        self.bookmaker = bookmaker
        self.market = market
        self.last_update = last_update
        self.outcomes = outcomes
        self.bookmaker_title = bookmaker_title
        self.signature: frozenset[OutcomeKey] = frozenset([o.key for o in outcomes])

    @property
    def lay(self) -> bool:
        return is_lay_market(self.market)

    def __repr__(self) -> str:
        return f"BookMarket({self.bookmaker!r}, {self.market!r}, {self.last_update!r}, {self.outcomes!r})"


@dataclass(frozen=True, slots=True)
class EventOdds:
    event_id: str
    sport_key: str
    commence_time: float
    home_team: str | None
    away_team: str | None
    books: tuple[BookMarket, ...]


LAY_DETAIL = "exchange lay prices (betting against an outcome) are not back odds"


def is_lay_market(market: str) -> bool:
    """``*_lay`` markets are exchange lay prices (betting against an outcome), not back odds."""
    return market.endswith("_lay")


@dataclass(frozen=True, slots=True)
class BestPrice:
    market: str
    outcome: Outcome  # the best-priced outcome itself
    bookmaker: str
    bookmaker_title: str
    last_update: float
    effective_price: float  # after the bookmaker's commission
    books: int  # how many bookmakers quote this exact outcome (name, description, point)


def best_prices(event: EventOdds, commission: Mapping[str, float] | None = None) -> list[BestPrice]:
    """The highest price of each outcome across bookmakers, per market. Outcomes are matched by
    (name, description, point): a spread of -3.5 is never compared with one of -4.5. Lay markets
    keep their own best prices (their market key differs). Ties go to the earlier bookmaker."""
    commission = commission or {}
    best: dict[tuple[str, OutcomeKey], tuple[float, Outcome, BookMarket]] = {}
    quoted: dict[tuple[str, OutcomeKey], int] = {}
    for book in event.books:
        c = commission.get(book.bookmaker, 0.0)
        for o in book.outcomes:
            price = effective_odds(o.price, c) if c else o.price
            slot = (book.market, o.key)
            quoted[slot] = quoted.get(slot, 0) + 1
            current = best.get(slot)
            if current is None or price > current[0]:
                best[slot] = (price, o, book)
    return [
        BestPrice(market, o, book.bookmaker, book.bookmaker_title, book.last_update, price, quoted[(market, key)])
        for (market, key), (price, o, book) in best.items()
    ]


# ---------------------------------------------------------------- arbitrage over a board

ExclusionReason = Literal["started", "stale_quote", "incomplete_outcome_set", "lay_market"]


@dataclass(frozen=True, slots=True)
class Exclusion:
    event_id: str
    market: str
    reason: ExclusionReason
    detail: str
    bookmaker: str | None = None


@dataclass(frozen=True)
class ArbitrageLeg:
    outcome: Outcome
    bookmaker: str
    bookmaker_title: str
    last_update: float
    commission: float
    effective_price: float
    stake: Decimal
    payout: Decimal


@dataclass(frozen=True)
class Arbitrage:
    event: EventOdds
    market: str
    implied_sum: float  # S over the effective best prices
    theoretical_profit_pct: float  # (1/S - 1) * 100 before rounding
    legs: list[ArbitrageLeg]
    total_staked: Decimal
    guaranteed_payout: Decimal
    profit: Decimal
    profit_pct: Decimal


@dataclass(frozen=True)
class CompleteSet:
    """A complete outcome set that was priced (arbitrage or not): the closest books when there is none."""

    event_id: str
    market: str
    implied_sum: float


@dataclass
class ArbitrageReport:
    opportunities: list[Arbitrage]
    exclusions: list[Exclusion]
    excluded_counts: dict[str, int]
    sets_checked: int
    closest: list[CompleteSet]


@dataclass(frozen=True)
class ArbitrageQuery:
    markets: frozenset[str]
    now: float
    total_stake: Decimal
    stake_unit: Decimal = Decimal(1)
    max_quote_age_s: float | None = None
    min_profit_pct: Decimal = Decimal(0)
    commission: Mapping[str, float] = field(default_factory=dict)
    max_results: int = 20
    max_exclusions: int = 50
    three_way_sports: tuple[str, ...] = ("soccer_",)  # h2h there has a Draw: two outcomes are never complete


def find_arbitrage(events: Iterable[EventOdds], query: ArbitrageQuery) -> ArbitrageReport:
    """Every arbitrage on the board, best first, and what was left out and why.

    For each event and requested market: quotes older than ``max_quote_age_s`` (by ``last_update``)
    are dropped; the best effective price (after per-book commission, `effective_odds`) of every
    outcome is taken across bookmakers, matching outcomes by (name, description, point). Candidate
    sets are the outcome sets bookmakers list in full (a line of a spread or total is its own set).
    A set is complete when no bookmaker lists an outcome that overlaps it without being part of it
    (and, for h2h in three-way sports, it has at least 3 outcomes). With best prices ``d_i`` of a
    complete set, ``S = sum(1/d_i)``; ``S < 1`` is an arbitrage: stakes ``T (1/d_i)/S`` rounded to
    ``stake_unit`` (`round_stakes`), and the profit recomputed after rounding must reach
    ``min_profit_pct``. Excluded, with a reason: events that started (commence_time <= now),
    lay markets, stale quotes, incomplete outcome sets.
    """
    q = query
    opportunities: list[Arbitrage] = []
    exclusions: list[Exclusion] = []
    counts: dict[str, int] = {}
    sets_checked = 0
    closest: list[CompleteSet] = []

    def exclude(event_id: str, market: str, reason: ExclusionReason, detail: str, book: str | None = None) -> None:
        counts[reason] = counts.get(reason, 0) + 1
        if len(exclusions) < q.max_exclusions:
            exclusions.append(Exclusion(event_id, market, reason, detail, book))

    max_age = q.max_quote_age_s
    oldest = q.now - max_age if max_age is not None else -math.inf
    commission = q.commission
    for event in events:
        by_market: dict[str, list[BookMarket]] = {}
        for book in event.books:
            market = book.market
            if is_lay_market(market):
                if market in q.markets or market.removesuffix("_lay") in q.markets:
                    exclude(event.event_id, market, "lay_market", LAY_DETAIL, book.bookmaker)
            elif market in q.markets:
                by_market.setdefault(market, []).append(book)
        if not by_market:
            continue
        if event.commence_time <= q.now:
            for market in by_market:
                exclude(event.event_id, market, "started", "the event started before the evaluation time")
            continue
        for market, books in by_market.items():
            best: dict[OutcomeKey, tuple[float, Outcome, BookMarket, float]] = {}
            listed: set[frozenset[OutcomeKey]] = set()  # every book's outcome set, stale ones included
            fresh: set[frozenset[OutcomeKey]] = set()
            for book in books:
                listed.add(book.signature)
                if book.last_update < oldest:
                    exclude(event.event_id, market, "stale_quote", f"quote older than {max_age:g} s", book.bookmaker)
                    continue
                c = commission.get(book.bookmaker, 0.0) if commission else 0.0
                fresh.add(book.signature)
                for o in book.outcomes:
                    price = 1 + (o.price - 1) * (1 - c) if c else o.price
                    current = best.get(o.key)
                    if current is None or price > current[0]:
                        best[o.key] = (price, o, book, c)
            for signature in fresh:
                problem = _incompleteness(signature, listed, market, event.sport_key, q.three_way_sports)
                if problem:
                    exclude(event.event_id, market, "incomplete_outcome_set", problem)
                    continue
                sets_checked += 1
                legs = [best[key] for key in signature]
                s = math.fsum(1 / leg[0] for leg in legs)
                closest.append(CompleteSet(event.event_id, market, s))
                if s >= 1 + 1e-12 or implied_sum([leg[0] for leg in legs]) >= 1:
                    continue
                found = _priced_arbitrage(event, market, legs, q)
                if found.profit_pct >= q.min_profit_pct and found.profit > 0:
                    opportunities.append(found)
    opportunities.sort(key=lambda a: (-a.profit_pct, a.event.commence_time))
    closest.sort(key=lambda c: c.implied_sum)
    return ArbitrageReport(opportunities[: q.max_results], exclusions, counts, sets_checked, closest[:5])


def _incompleteness(
    signature: frozenset[OutcomeKey],
    signatures: set[frozenset[OutcomeKey]],
    market: str,
    sport_key: str,
    three_way_sports: tuple[str, ...],
) -> str | None:
    """Why ``signature`` is not a complete, mutually exclusive outcome set (None when it is)."""
    if len(signature) < 2:
        return "fewer than 2 outcomes listed"
    if market == "h2h" and sport_key.startswith(three_way_sports) and len(signature) < 3:
        return "three-way market (home, draw, away) with only 2 outcomes listed"
    for other in signatures:
        if other is not signature and other & signature and not other <= signature:
            extra = sorted(str(name) for name, _, _ in other - signature)
            return f"another bookmaker lists more outcomes on this line ({', '.join(extra)[:120]})"
    return None


def _priced_arbitrage(
    event: EventOdds, market: str, legs: list[tuple[float, Outcome, BookMarket, float]], q: ArbitrageQuery
) -> Arbitrage:
    legs = sorted(legs, key=lambda leg: (leg[1].name, leg[1].description or "", leg[1].point or 0.0))
    prices = [leg[0] for leg in legs]
    rounded = round_stakes(prices, q.total_stake, q.stake_unit)
    s = float(implied_sum(prices))
    return Arbitrage(
        event=event,
        market=market,
        implied_sum=s,
        theoretical_profit_pct=(1 / s - 1) * 100,
        legs=[
            ArbitrageLeg(o, book.bookmaker, book.bookmaker_title, book.last_update, c, price, stake, payout)
            for (price, o, book, c), stake, payout in zip(legs, rounded.stakes, rounded.payouts, strict=True)
        ],
        total_staked=rounded.total_staked,
        guaranteed_payout=min(rounded.payouts),
        profit=rounded.profit,
        profit_pct=rounded.profit_pct,
    )


# ---------------------------------------------------------------- bookmaker margins


@dataclass(frozen=True)
class BookmakerMargin:
    bookmaker: str
    bookmaker_title: str
    books: int  # complete books measured
    mean_overround: float
    median_overround: float
    min_overround: float
    max_overround: float


def bookmaker_margins(events: Iterable[EventOdds], market: str) -> list[BookmakerMargin]:
    """Each bookmaker's overround ``S - 1`` on ``market``, over every event where it lists at least 2
    outcomes (its own book: a spread or total line as the bookmaker offers it). Sorted by mean,
    lowest margin first. Lay markets measure exchange lay prices; ask for them by their own key."""
    found: dict[str, tuple[str, list[float]]] = {}
    for event in events:
        for book in event.books:
            if book.market != market or len(book.outcomes) < 2:
                continue
            margin = math.fsum(1 / o.price for o in book.outcomes) - 1
            found.setdefault(book.bookmaker, (book.bookmaker_title, []))[1].append(margin)
    out = []
    for key, (title, margins) in found.items():
        ordered = sorted(margins)
        n = len(ordered)
        median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        out.append(BookmakerMargin(key, title, n, math.fsum(ordered) / n, median, ordered[0], ordered[-1]))
    out.sort(key=lambda m: (m.mean_overround, m.bookmaker))
    return out


# ---------------------------------------------------------------- movement over stored snapshots


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One stored price of one outcome at one bookmaker: the odds at ``at`` (its last_update)."""

    bookmaker: str
    market: str
    name: str
    description: str | None
    point: float | None
    price: float
    at: float


@dataclass(frozen=True)
class Move:
    from_price: float
    to_price: float
    at: float  # when the new price was first seen (its last_update)
    probability_change: float  # 1/to - 1/from (positive: the outcome got shorter)


@dataclass(frozen=True)
class PriceSeries:
    bookmaker: str
    market: str
    name: str
    description: str | None
    point: float | None
    opening: float
    opening_at: float
    latest: float
    latest_at: float
    changes: int  # price changes between consecutive distinct snapshots
    probability_change: float  # 1/latest - 1/opening
    biggest_move: Move | None


def odds_movement(points: Iterable[PricePoint]) -> list[PriceSeries]:
    """Per bookmaker and outcome (market, name, description, point): the opening and latest price, the
    number of changes and the biggest single move by implied probability ``|1/d_new - 1/d_old|``.
    Points are ordered by ``at``; repeated snapshots of an unchanged price count once.
    Sorted by ``|probability_change|``, biggest first."""
    series: dict[tuple[str, str, str, str | None, float | None], list[PricePoint]] = {}
    for p in points:
        series.setdefault((p.bookmaker, p.market, p.name, p.description, p.point), []).append(p)
    out = []
    for (book, market, name, description, point), items in series.items():
        items.sort(key=lambda p: p.at)
        changes = 0
        biggest: Move | None = None
        for previous, current in itertools.pairwise(items):
            if current.price == previous.price:
                continue
            changes += 1
            move = Move(previous.price, current.price, current.at, 1 / current.price - 1 / previous.price)
            if biggest is None or abs(move.probability_change) > abs(biggest.probability_change):
                biggest = move
        first, last = items[0], items[-1]
        out.append(
            PriceSeries(
                book, market, name, description, point, first.price, first.at, last.price, last.at, changes,
                1 / last.price - 1 / first.price, biggest,
            )
        )  # fmt: skip
    out.sort(key=lambda s: (-abs(s.probability_change), s.bookmaker, s.name))
    return out
