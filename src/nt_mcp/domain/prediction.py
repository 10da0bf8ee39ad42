"""Binary prediction-market math: expected value, Kelly stakes, venue fees, spreads, book walks.

Conventions (every function here):

- A contract pays 1 (dollar, or pUSD/USDC on Polymarket) if its outcome happens, else 0.
- Prices and probabilities are `Decimal` in the open interval (0, 1). ``p`` is *your* probability
  that the outcome of the contract you buy happens; ``c`` is what one contract costs you, fees
  included (``c = price + fee / contracts``).
- YES and NO mirror each other: buying NO at ``q`` is a bet on ``1 - p`` at cost ``q``. Where a
  function takes the YES price ``c`` and side ``no``, the NO contract costs ``1 - c``.
- Books are lists of `Level` (price, size) ordered best first: bids highest first, asks lowest first.

Nothing here does I/O; nothing here imports the rest of the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Literal

from nt_mcp.domain.errors import DomainValueError

Side = Literal["yes", "no"]
ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
KALSHI_TAKER_RATE = Decimal("0.07")
KALSHI_FEE_SCHEDULE = (
    "Kalshi general taker fee: ceil(0.07 x C x P x (1 - P)) rounded up to the next cent per order fill "
    "(P = price in dollars, C = contracts); maker fees and series with their own fee multiplier are not modelled"
)
POLYMARKET_FEE_SCHEDULE = (
    "Polymarket taker fee: C x rate x P x (1 - P) with the rate of the market's feeSchedule "
    "(0 when feesEnabled is false), rounded to 0.00001; makers pay nothing"
)
POLYMARKET_FEE_STEP = Decimal("0.00001")


def _check_unit(value: Decimal, argument: str) -> None:
    if not (ZERO < value < ONE):
        raise DomainValueError(argument, f"must lie strictly between 0 and 1, got {value}")


# ---- expected value and Kelly ----


def expected_value(probability: Decimal, cost: Decimal) -> Decimal:
    """EV per contract = p - c: a contract costing c pays 1 with probability p."""
    _check_unit(probability, "probability")
    return probability - cost


def return_per_unit(probability: Decimal, cost: Decimal) -> Decimal:
    """Expected return per unit staked = p / c - 1 (EV divided by the cost of the contract)."""
    _check_unit(probability, "probability")
    if cost <= 0:
        raise DomainValueError("price", f"the cost per contract must be positive, got {cost}")
    return probability / cost - ONE


def kelly_fraction(probability: Decimal, cost: Decimal) -> Decimal:
    """Binary Kelly fraction of the bankroll: f* = (p - c) / (1 - c) when p > c, else 0.

    Derivation: a contract bought at c returns net odds b = (1 - c) / c; Kelly f* = (b p - (1 - p)) / b
    = (p - c) / (1 - c). A cost of 1 or more (fees included) can never win, so f* = 0.
    """
    _check_unit(probability, "probability")
    if cost >= ONE or probability <= cost:
        return ZERO
    return (probability - cost) / (ONE - cost)


def side_cost_and_probability(yes_price: Decimal, yes_probability: Decimal, side: Side) -> tuple[Decimal, Decimal]:
    """The price paid and the probability of winning for ``side``, given the YES price and P(YES).

    YES: (c, p). NO (the mirror): (1 - c, 1 - p).
    """
    _check_unit(yes_price, "price")
    _check_unit(yes_probability, "probability")
    return (yes_price, yes_probability) if side == "yes" else (ONE - yes_price, ONE - yes_probability)


@dataclass(frozen=True)
class Stake:
    """What Kelly says to stake: the full-Kelly fraction, the fraction used and the amount."""

    full_kelly: Decimal
    fraction_used: Decimal  # full_kelly x kelly_multiplier, capped at max_fraction
    capped: bool
    stake: Decimal  # bankroll x fraction_used
    contracts: Decimal  # whole contracts the stake buys: floor(stake / cost)


def kelly_stake(
    probability: Decimal,
    cost: Decimal,
    bankroll: Decimal,
    kelly_multiplier: Decimal = ONE,
    max_fraction: Decimal = ONE,
) -> Stake:
    """Fractional Kelly with a cap: fraction = min(f* x kelly_multiplier, max_fraction);
    stake = bankroll x fraction; contracts = floor(stake / c).

    ``kelly_multiplier`` in (0, 1] (0.5 = half Kelly); ``max_fraction`` in (0, 1] caps the share of
    the bankroll on one bet whatever Kelly says.
    """
    if bankroll < 0:
        raise DomainValueError("bankroll", f"must not be negative, got {bankroll}")
    if not (ZERO < kelly_multiplier <= ONE):
        raise DomainValueError("kelly_fraction", f"must lie in (0, 1], got {kelly_multiplier}")
    if not (ZERO < max_fraction <= ONE):
        raise DomainValueError("max_fraction", f"must lie in (0, 1], got {max_fraction}")
    full = kelly_fraction(probability, cost)
    scaled = full * kelly_multiplier
    used = min(scaled, max_fraction)
    stake = bankroll * used
    contracts = (stake / cost).to_integral_value(rounding=ROUND_DOWN) if cost > 0 else ZERO
    return Stake(full_kelly=full, fraction_used=used, capped=scaled > max_fraction, stake=stake, contracts=contracts)


# ---- fees ----


def kalshi_taker_fee(contracts: Decimal, price: Decimal) -> Decimal:
    """Kalshi's general taker fee for one order fill: ceil(0.07 x C x P x (1 - P)) to the next cent.

    Symmetric in P and 1 - P, so the YES and NO legs of a trade pay the same. For a fill across
    several price levels the per-level terms are summed and rounded up once (Kalshi accumulates
    fees per order so many small fills cost what one equivalent fill would).
    """
    _check_unit(price, "price")
    if contracts < 0:
        raise DomainValueError("contracts", f"must not be negative, got {contracts}")
    return kalshi_fee_from_terms(KALSHI_TAKER_RATE * contracts * price * (ONE - price))


def kalshi_fee_from_terms(raw: Decimal) -> Decimal:
    """Round a summed raw Kalshi fee up to the next cent."""
    return (raw / CENT).to_integral_value(rounding=ROUND_CEILING) * CENT


def polymarket_taker_fee(contracts: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """Polymarket's taker fee: C x rate x P x (1 - P), ``rate`` from the market's ``feeSchedule``,
    rounded half-up to 0.00001 (its fee precision). Makers pay nothing."""
    _check_unit(price, "price")
    if contracts < 0 or rate < 0:
        raise DomainValueError("fee_rate", "contracts and the fee rate must not be negative")
    return (contracts * rate * price * (ONE - price)).quantize(POLYMARKET_FEE_STEP, rounding=ROUND_HALF_UP)


# ---- books ----


@dataclass(frozen=True)
class Level:
    price: Decimal
    size: Decimal


def spread(best_bid: Decimal | None, best_ask: Decimal | None) -> Decimal | None:
    """Best ask - best bid; None when either side of the book is empty."""
    if best_bid is None or best_ask is None:
        return None
    return best_ask - best_bid


def implied_probability_mid(best_bid: Decimal | None, best_ask: Decimal | None) -> Decimal | None:
    """Implied probability from the mid: (bid + ask) / 2; None when either side is empty."""
    if best_bid is None or best_ask is None:
        return None
    return (best_bid + best_ask) / 2


def implied_probability_ask(best_ask: Decimal | None) -> Decimal | None:
    """Implied probability from the ask: the price a buyer pays now (the cost of certainty of 1)."""
    return best_ask


@dataclass(frozen=True)
class Fill:
    price: Decimal
    size: Decimal


@dataclass(frozen=True)
class Walk:
    """The result of walking a book for ``wanted`` contracts within a limit price."""

    wanted: Decimal
    fills: tuple[Fill, ...]

    @property
    def filled(self) -> Decimal:
        return sum((f.size for f in self.fills), ZERO)

    @property
    def unfilled(self) -> Decimal:
        return self.wanted - self.filled

    @property
    def notional(self) -> Decimal:
        """Sum of price x size over the fills (fees excluded)."""
        return sum((f.price * f.size for f in self.fills), ZERO)

    @property
    def average_price(self) -> Decimal | None:
        filled = self.filled
        return self.notional / filled if filled > 0 else None


def walk_book(levels: Sequence[Level], wanted: Decimal, limit: Decimal | None, *, buying: bool) -> Walk:
    """Take ``wanted`` contracts from ``levels`` (best first) at prices no worse than ``limit``.

    Buying walks the asks (take a level while price <= limit); selling walks the bids (while
    price >= limit). Each level gives min(its size, what is still wanted). The average price is
    notional / filled; it can never beat the best level (tested).
    """
    if wanted < 0:
        raise DomainValueError("count", f"must not be negative, got {wanted}")
    fills: list[Fill] = []
    left = wanted
    for level in levels:
        if left <= 0:
            break
        if limit is not None and (level.price > limit if buying else level.price < limit):
            break
        if level.size <= 0:
            continue
        take = min(level.size, left)
        fills.append(Fill(level.price, take))
        left -= take
    return Walk(wanted=wanted, fills=tuple(fills))


def polymarket_fee_for_walk(walk: Walk, rate: Decimal) -> Decimal:
    """Polymarket taker fee of a walk: sum over levels of size x rate x P x (1 - P), rounded once."""
    raw = sum((f.size * rate * f.price * (ONE - f.price) for f in walk.fills), ZERO)
    return raw.quantize(POLYMARKET_FEE_STEP, rounding=ROUND_HALF_UP)


def kalshi_fee_for_walk(walk: Walk) -> Decimal:
    """Kalshi taker fee of a walk: sum over levels of 0.07 x size x P x (1 - P), rounded up to the cent once."""
    raw = sum((KALSHI_TAKER_RATE * f.size * f.price * (ONE - f.price) for f in walk.fills), ZERO)
    return kalshi_fee_from_terms(raw)


def on_tick(price: Decimal, ranges: Sequence[tuple[Decimal, Decimal, Decimal]]) -> bool:
    """Whether ``price`` is a valid quote: inside one of ``ranges`` (start, end, step) and a whole
    number of steps above its start. Kalshi's ``price_ranges`` and Polymarket's tick size both fit."""
    return any(start <= price <= end and step > 0 and (price - start) % step == 0 for start, end, step in ranges)


# ---- cross-venue comparison ----


@dataclass(frozen=True)
class VenueQuote:
    """One venue's price for buying ``contracts`` of a side, after walking its book and adding fees."""

    venue: str
    walk: Walk
    fee: Decimal

    @property
    def all_in_cost(self) -> Decimal | None:
        """(notional + fee) / filled: what one contract really costs; None when nothing is offered."""
        filled = self.walk.filled
        return (self.walk.notional + self.fee) / filled if filled > 0 else None


def best_venue(quotes: Sequence[VenueQuote], contracts: Decimal) -> VenueQuote | None:
    """The venue with the lowest all-in cost among those that can fill all ``contracts``; when none
    can, the one filling the most (ties by cost). None when no venue offers anything."""
    offered = [q for q in quotes if q.all_in_cost is not None]
    if not offered:
        return None
    full = [q for q in offered if q.walk.filled >= contracts]
    pool = full or offered
    return min(pool, key=lambda q: (-q.walk.filled if not full else ZERO, q.all_in_cost or ONE))
