"""Binary prediction-market math: worked numbers from the formulas, and properties that must always hold."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nt_mcp.domain import prediction as m
from nt_mcp.domain.errors import DomainValueError

unit = st.decimals(min_value=D("0.01"), max_value=D("0.99"), places=2)
size = st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2)
levels = st.lists(st.tuples(unit, size), min_size=0, max_size=12)


def test_worked_example_62_percent_belief_at_55_cents() -> None:
    p, c = D("0.62"), D("0.55")
    assert m.expected_value(p, c) == D("0.07")
    assert m.return_per_unit(p, c).quantize(D("0.0001")) == D("0.1273")  # 0.62 / 0.55 - 1
    assert m.kelly_fraction(p, c).quantize(D("0.0001")) == D("0.1556")  # 0.07 / 0.45
    stake = m.kelly_stake(p, c, D("1000"), kelly_multiplier=D("0.5"))
    assert stake.stake.quantize(D("0.01")) == D("77.78") and stake.contracts == 141  # floor(77.78 / 0.55)
    capped = m.kelly_stake(p, c, D("1000"), max_fraction=D("0.05"))
    assert capped.capped and capped.stake == D("50.00")


def test_no_side_is_the_mirror_of_yes() -> None:
    cost, p = m.side_cost_and_probability(D("0.55"), D("0.62"), "no")
    assert (cost, p) == (D("0.45"), D("0.38"))
    assert m.kelly_fraction(p, cost) == 0  # 0.38 < 0.45: no edge on NO
    cost, p = m.side_cost_and_probability(D("0.70"), D("0.40"), "no")
    assert m.kelly_fraction(p, cost) == (D("0.60") - D("0.30")) / (1 - D("0.30"))


def test_kalshi_taker_fee_schedule_rounds_up_to_the_cent() -> None:
    assert m.kalshi_taker_fee(D(1), D("0.50")) == D("0.02")  # 0.0175 -> 2 cents
    assert m.kalshi_taker_fee(D(100), D("0.50")) == D("1.75")
    assert m.kalshi_taker_fee(D(10), D("0.50")) == D("0.18")  # 0.175 -> 18 cents
    assert m.kalshi_taker_fee(D(100), D("0.05")) == D("0.34")  # 0.3325 -> 34 cents
    assert m.kalshi_taker_fee(D(100), D("0.25")) == m.kalshi_taker_fee(D(100), D("0.75")) == D("1.32")


def test_polymarket_fee_uses_the_feeschedule_rate() -> None:
    assert m.polymarket_taker_fee(D(100), D("0.50"), D("0.04")) == D("1.00000")
    assert m.polymarket_taker_fee(D(100), D("0.50"), D(0)) == 0
    assert m.polymarket_taker_fee(D(3), D("0.33"), D("0.03")) == D("0.01990")  # 0.019899 rounded to 1e-5


def test_walk_partial_fill_by_depth() -> None:
    asks = [m.Level(D("0.52"), D(10)), m.Level(D("0.53"), D(20)), m.Level(D("0.60"), D(100))]
    walk = m.walk_book(asks, D(50), D("0.55"), buying=True)
    assert [(f.price, f.size) for f in walk.fills] == [(D("0.52"), D(10)), (D("0.53"), D(20))]
    assert walk.filled == 30 and walk.unfilled == 20
    assert walk.notional == D("15.80") and walk.average_price == D("15.80") / 30
    assert m.kalshi_fee_for_walk(walk) == D("0.53")  # ceil(0.07 x (10 x .52 x .48 + 20 x .53 x .47)) = ceil(0.52346)


def test_kalshi_fee_for_walk_sums_levels_then_rounds_once() -> None:
    walk = m.Walk(D(30), (m.Fill(D("0.52"), D(10)), m.Fill(D("0.53"), D(20))))
    raw = D("0.07") * (10 * D("0.52") * D("0.48") + 20 * D("0.53") * D("0.47"))  # 0.52346
    assert m.kalshi_fee_for_walk(walk) == D("0.53") and raw < D("0.53")


def test_spread_mid_and_ticks() -> None:
    assert m.spread(D("0.43"), D("0.45")) == D("0.02")
    assert m.implied_probability_mid(D("0.43"), D("0.45")) == D("0.44")
    assert m.spread(None, D("0.45")) is None
    ranges = [(D("0"), D("0.10"), D("0.001")), (D("0.10"), D("0.90"), D("0.01"))]
    assert m.on_tick(D("0.055"), ranges) and m.on_tick(D("0.55"), ranges) and not m.on_tick(D("0.555"), ranges)


def test_best_venue_prefers_a_full_fill_then_the_lowest_all_in_cost() -> None:
    cheap_thin = m.VenueQuote("kalshi", m.Walk(D(100), (m.Fill(D("0.40"), D(10)),)), D(0))
    full = m.VenueQuote("polymarket", m.Walk(D(100), (m.Fill(D("0.45"), D(100)),)), D("0.50"))
    assert m.best_venue([cheap_thin, full], D(100)) is full
    assert full.all_in_cost == D("0.455")
    assert m.best_venue([], D(100)) is None


def test_bad_probability_is_a_domain_error_naming_it() -> None:
    with pytest.raises(DomainValueError) as error:
        m.kelly_fraction(D("1.2"), D("0.5"))
    assert error.value.argument == "probability"


@given(p=unit, c=unit)
def test_kelly_is_zero_without_edge_and_positive_with_it(p: D, c: D) -> None:
    f = m.kelly_fraction(p, c)
    assert (f > 0) == (p > c)
    assert 0 <= f < 1
    assert m.kelly_fraction(c, c) == 0  # no edge, no bet


@given(p=unit, c=unit)
def test_ev_sign_matches_belief_versus_cost(p: D, c: D) -> None:
    ev = m.expected_value(p, c)
    assert (ev > 0) == (p > c) and (ev < 0) == (p < c)
    assert (m.return_per_unit(p, c) > 0) == (p > c)


@given(raw=levels, wanted=size, limit=st.one_of(st.none(), unit))
def test_walking_the_book_never_beats_the_best_price(raw: list[tuple[D, D]], wanted: D, limit: D | None) -> None:
    asks = [m.Level(p, s) for p, s in sorted(raw)]  # best (lowest) first
    bids = [m.Level(p, s) for p, s in sorted(raw, reverse=True)]  # best (highest) first
    bought = m.walk_book(asks, wanted, limit, buying=True)
    sold = m.walk_book(bids, wanted, limit, buying=False)
    total = sum((s for _, s in raw), D(0))
    for walk in (bought, sold):
        assert walk.filled <= wanted and walk.filled <= total
        assert walk.filled == min(wanted, total) or limit is not None
    if bought.average_price is not None:
        assert bought.average_price >= asks[0].price
        assert limit is None or max(f.price for f in bought.fills) <= limit
    if sold.average_price is not None:
        assert sold.average_price <= bids[0].price
        assert limit is None or min(f.price for f in sold.fills) >= limit


@given(c=size, p=unit)
def test_kalshi_fee_is_symmetric_and_never_below_the_raw_formula(c: D, p: D) -> None:
    fee = m.kalshi_taker_fee(c, p)
    assert fee == m.kalshi_taker_fee(c, 1 - p)
    raw = D("0.07") * c * p * (1 - p)
    assert raw <= fee < raw + D("0.01")
