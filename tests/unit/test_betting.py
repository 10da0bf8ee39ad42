"""Betting math: conversions, margins, Shin, best prices, arbitrage with its exclusions, Kelly, movement.
Worked numbers are computed by hand in the comments; hypothesis checks the properties the formulas promise."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nt_mcp.domain.betting import (
    ArbitrageQuery,
    BookMarket,
    EventOdds,
    Outcome,
    PricePoint,
    american_from_decimal,
    arbitrage_stakes,
    best_prices,
    bookmaker_margins,
    decimal_from_american,
    effective_odds,
    find_arbitrage,
    format_odds,
    guaranteed_profit,
    implied_sum,
    kelly_fraction,
    kelly_stake,
    log_growth,
    odds_movement,
    overround,
    parse_odds,
    proportional_probabilities,
    round_stakes,
    shin_probabilities,
)
from nt_mcp.domain.errors import DomainValueError

NOW = 1_800_000_000.0
LATER = NOW + 3600


def book(key: str, market: str, *outcomes: tuple[str, float] | tuple[str, float, float], at: float = NOW) -> BookMarket:
    made = [Outcome(o[0], o[1], o[2] if len(o) == 3 else None) for o in outcomes]  # type: ignore[misc]
    return BookMarket(key, market, at, tuple(made), key.title())


def event(*books: BookMarket, sport: str = "basketball_nba", start: float = LATER, event_id: str = "ev1") -> EventOdds:
    return EventOdds(event_id, sport, start, "Home", "Away", tuple(books))


def query(markets: tuple[str, ...] = ("h2h",), **overrides: object) -> ArbitrageQuery:
    values: dict[str, object] = {"markets": frozenset(markets), "now": NOW + 10, "total_stake": Decimal(1000)}
    return ArbitrageQuery(**(values | overrides))  # type: ignore[arg-type]


# ---------------------------------------------------------------- conversions


def test_conversions_between_formats() -> None:
    assert decimal_from_american(150) == 2.5
    assert decimal_from_american(-200) == 1.5
    assert american_from_decimal(2.5) == pytest.approx(150)
    assert american_from_decimal(1.5) == pytest.approx(-200)
    assert parse_odds("5/2", "fractional") == 3.5
    assert parse_odds("evens", "fractional") == 2.0
    assert parse_odds("-110", "american") == pytest.approx(1.909090909)
    assert parse_odds("0.25", "probability") == 4.0
    assert format_odds(3.5, "fractional") == "5/2"
    assert format_odds(1.909090909, "american") == -110.0
    assert format_odds(4.0, "probability") == 0.25


@pytest.mark.parametrize(
    ("value", "fmt"),
    [("1", "decimal"), ("0.9", "decimal"), ("-50", "american"), ("99", "american"), ("0", "probability"),
     ("1", "probability"), ("5/0", "fractional"), ("-1/2", "fractional"), ("abc", "decimal"), ("nan", "decimal"),
     ("inf", "american"), ("1e400", "decimal")],
)  # fmt: skip
def test_values_that_are_not_odds_are_refused_naming_the_argument(value: str, fmt: str) -> None:
    with pytest.raises(DomainValueError) as refused:
        parse_odds(value, fmt, "odds")  # type: ignore[arg-type]
    assert refused.value.argument == "odds"


# ---------------------------------------------------------------- margins


def test_overround_and_proportional_probabilities() -> None:
    # 1/1.91 + 1/1.91 = 1.0471: a 4.71% margin; removed proportionally each side is 50%
    assert overround([1.91, 1.91]) == pytest.approx(0.04712, abs=1e-5)
    assert proportional_probabilities([1.91, 1.91]) == pytest.approx([0.5, 0.5])
    probabilities = proportional_probabilities([2.6, 2.4, 4.3])
    assert sum(probabilities) == pytest.approx(1)
    assert probabilities[0] == pytest.approx((1 / 2.6) / (1 / 2.6 + 1 / 2.4 + 1 / 4.3))


def test_shin_matches_the_published_example_and_the_two_outcome_closed_form() -> None:
    # the shin package's README example, and Jullien & Salanie's closed form for two outcomes
    result = shin_probabilities([2.6, 2.4, 4.3])
    assert result.probabilities == pytest.approx([0.37299406033208965, 0.4047794109200184, 0.2222265287474275])
    assert result.z == pytest.approx(0.01694251276407055) and result.converged
    pi = [1 / 1.5, 1 / 2.74]
    s = sum(pi)
    z = ((s - 1) * ((pi[0] - pi[1]) ** 2 - s)) / (s * ((pi[0] - pi[1]) ** 2 - 1))
    expected = [(math.sqrt(z**2 + 4 * (1 - z) * p**2 / s) - z) / (2 * (1 - z)) for p in pi]
    assert shin_probabilities([1.5, 2.74]).probabilities == pytest.approx(expected)
    # longshots give up more of their price than favourites
    shin = shin_probabilities([1.2, 5.0]).probabilities
    proportional = proportional_probabilities([1.2, 5.0])
    assert shin[1] < proportional[1] and shin[0] > proportional[0]


def test_shin_needs_a_positive_margin() -> None:
    with pytest.raises(DomainValueError) as refused:
        shin_probabilities([2.2, 2.2])  # S = 0.909
    assert refused.value.argument == "odds"
    assert shin_probabilities([2.0, 2.0]).probabilities == [0.5, 0.5]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1.01, max_value=50), min_size=2, max_size=12))
def test_fair_probabilities_sum_to_one(prices: list[float]) -> None:
    assert sum(proportional_probabilities(prices)) == pytest.approx(1)
    assume(sum(1 / d for d in prices) > 1.0001)
    try:
        shin = shin_probabilities(prices)
    except DomainValueError as error:  # a margin too large for the model (e.g. S = 2.27): said, not guessed
        assert "no solution" in error.message
        return
    assert sum(shin.probabilities) == pytest.approx(1, abs=1e-6)


# ---------------------------------------------------------------- best prices


def test_best_price_is_matched_by_outcome_name_not_position() -> None:
    a = book("a", "h2h", ("Lakers", 2.10), ("Celtics", 1.80))
    b = book("b", "h2h", ("Celtics", 1.95), ("Lakers", 1.90))  # listed in the other order
    best = {p.outcome.name: (p.bookmaker, p.outcome.price, p.books) for p in best_prices(event(a, b))}
    assert best == {"Lakers": ("a", 2.10, 2), "Celtics": ("b", 1.95, 2)}


def test_spread_best_prices_only_compare_identical_points() -> None:
    a = book("a", "spreads", ("Lakers", 1.91, -3.5), ("Celtics", 1.91, 3.5))
    b = book("b", "spreads", ("Lakers", 2.30, -4.5), ("Celtics", 1.65, 4.5))
    best = {(p.outcome.name, p.outcome.point): (p.bookmaker, p.outcome.price) for p in best_prices(event(a, b))}
    assert best == {
        ("Lakers", -3.5): ("a", 1.91),
        ("Celtics", 3.5): ("a", 1.91),
        ("Lakers", -4.5): ("b", 2.30),
        ("Celtics", 4.5): ("b", 1.65),
    }


# ---------------------------------------------------------------- arbitrage


def test_two_way_arbitrage_with_stakes_rounded_and_profit_recomputed() -> None:
    # best: Lakers 2.10 (a), Celtics 2.05 (b); S = 1/2.1 + 1/2.05 = 0.963995; theoretical 3.7349%
    a = book("a", "h2h", ("Lakers", 2.10), ("Celtics", 1.80))
    b = book("b", "h2h", ("Lakers", 1.85), ("Celtics", 2.05))
    report = find_arbitrage([event(a, b)], query())
    [arb] = report.opportunities
    assert arb.implied_sum == pytest.approx(1 / 2.1 + 1 / 2.05)
    assert arb.theoretical_profit_pct == pytest.approx((1 / (1 / 2.1 + 1 / 2.05) - 1) * 100)
    legs = {leg.outcome.name: leg for leg in arb.legs}
    # raw stakes 1000*(1/2.1)/S = 493.98, 1000*(1/2.05)/S = 506.02 -> 494 and 506
    assert (legs["Lakers"].bookmaker, legs["Lakers"].stake) == ("a", Decimal(494))
    assert (legs["Celtics"].bookmaker, legs["Celtics"].stake) == ("b", Decimal(506))
    assert legs["Lakers"].payout == Decimal("1037.40") and legs["Celtics"].payout == Decimal("1037.30")
    assert arb.total_staked == 1000 and arb.profit == Decimal("37.30") and arb.profit_pct == Decimal("3.7300")
    assert report.sets_checked == 1 and report.exclusions == []


def test_rounding_that_destroys_a_thin_edge_is_not_reported() -> None:
    # S = 1/2.02 + 1/1.99 = 0.997562 (0.24% in theory); stakes rounded to 100 on a total of 200 lose it
    a = book("a", "h2h", ("X", 2.02), ("Y", 1.90))
    b = book("b", "h2h", ("X", 1.90), ("Y", 1.99))
    assert find_arbitrage([event(a, b)], query(total_stake=Decimal(1000))).opportunities
    assert find_arbitrage([event(a, b)], query(total_stake=Decimal(200), stake_unit=Decimal(100))).opportunities == []
    assert find_arbitrage([event(a, b)], query(min_profit_pct=Decimal("0.5"))).opportunities == []


def test_commission_lowers_the_effective_price() -> None:
    # S = 1/2.05 + 1/2.00 = 0.9878: a 1.23% arbitrage; with 5% commission on winnings at b, Celtics 2.00
    # is worth 1 + 1.00*0.95 = 1.95 and S = 1/2.05 + 1/1.95 = 1.0006: none
    a = book("a", "h2h", ("Lakers", 2.05), ("Celtics", 1.80))
    b = book("b", "h2h", ("Lakers", 1.85), ("Celtics", 2.00))
    assert find_arbitrage([event(a, b)], query()).opportunities
    assert effective_odds(2.00, 0.05) == pytest.approx(1.95)
    report = find_arbitrage([event(a, b)], query(commission={"b": 0.05}))
    assert report.opportunities == []
    assert report.closest[0].implied_sum == pytest.approx(1 / 2.05 + 1 / 1.95)


def test_exclusions_started_stale_lay_and_incomplete_sets() -> None:
    arb_pair = (book("a", "h2h", ("X", 2.10), ("Y", 1.80)), book("b", "h2h", ("X", 1.85), ("Y", 2.05)))
    started = event(*arb_pair, start=NOW - 60, event_id="started")
    stale = event(book("a", "h2h", ("X", 2.10), ("Y", 1.80), at=NOW - 3600), arb_pair[1], event_id="stale")
    lay = event(
        book("betfair", "h2h_lay", ("X", 2.30), ("Y", 2.20)), book("c", "h2h", ("X", 1.9), ("Y", 1.9)), event_id="lay"
    )
    # soccer h2h is three-way: two books listing only two outcomes are not a complete set
    soccer = event(*arb_pair, sport="soccer_epl", event_id="soccer")
    # one book lists a third outcome on the same market: the two-outcome lists are incomplete
    partial = event(*arb_pair, book("c", "h2h", ("X", 3.0), ("Y", 3.0), ("Draw", 3.0)), event_id="partial")
    report = find_arbitrage([started, stale, lay, soccer, partial], query(max_quote_age_s=600))
    reasons = {(e.event_id, e.reason) for e in report.exclusions}
    assert ("started", "started") in reasons
    assert ("stale", "stale_quote") in reasons
    assert ("lay", "lay_market") in reasons
    assert ("soccer", "incomplete_outcome_set") in reasons
    assert ("partial", "incomplete_outcome_set") in reasons
    # what was left after exclusions: the stale book's X 2.10 is gone, so no arbitrage anywhere;
    # 'partial' keeps the complete three-way set (S = 1/2.1 + 1/3 + 1/2.05 > 1)
    assert report.opportunities == []
    assert report.excluded_counts["lay_market"] == 1 and report.excluded_counts["started"] == 1
    # the lay prices alone would have looked like an arbitrage (1/2.3 + 1/2.2 < 1): they are never priced
    assert all(c.event_id != "lay" or c.implied_sum > 1 for c in report.closest)


def test_spreads_with_mismatched_points_are_never_combined() -> None:
    # Lakers -3.5 at 2.40 (a) with Celtics +4.5 at 2.40 (b) would look like S = 0.83: it is a different line
    a = book("a", "spreads", ("Lakers", 2.40, -3.5), ("Celtics", 1.60, 3.5))
    b = book("b", "spreads", ("Lakers", 1.60, -4.5), ("Celtics", 2.40, 4.5))
    report = find_arbitrage([event(a, b)], query(("spreads",)))
    assert report.opportunities == [] and report.sets_checked == 2
    # the same line at two books is combined
    c = book("c", "spreads", ("Lakers", 1.70, -3.5), ("Celtics", 2.60, 3.5))
    [arb] = find_arbitrage([event(a, c)], query(("spreads",))).opportunities
    assert {(leg.outcome.name, leg.outcome.point, leg.bookmaker) for leg in arb.legs} == {
        ("Lakers", -3.5, "a"),
        ("Celtics", 3.5, "c"),
    }


# ---------------------------------------------------------------- arbitrage properties

prices_strategy = st.lists(st.floats(min_value=1.01, max_value=100), min_size=2, max_size=8)


@settings(max_examples=300, deadline=None)
@given(prices_strategy, st.integers(min_value=1, max_value=10**7))
def test_stakes_return_the_same_payout_on_every_outcome(prices: list[float], total: int) -> None:
    stakes = arbitrage_stakes(prices, total)
    payouts = {stake * Fraction(d) for stake, d in zip(stakes, prices, strict=True)}
    assert len(payouts) == 1
    assert sum(stakes) == total
    assert payouts.pop() == total / implied_sum(prices)


@settings(max_examples=300, deadline=None)
@given(prices_strategy, st.integers(min_value=1, max_value=10**7))
def test_profit_is_positive_exactly_when_the_implied_sum_is_below_one(prices: list[float], total: int) -> None:
    assert (guaranteed_profit(prices, total) > 0) == (implied_sum(prices) < 1)


@settings(max_examples=300, deadline=None)
@given(
    prices_strategy,
    st.integers(min_value=100, max_value=10**6),
    st.sampled_from([Decimal("0.01"), Decimal(1), Decimal(5)]),
)
def test_rounded_stakes_keep_payouts_within_a_unit_and_the_profit_is_recomputed(
    prices: list[float], total: int, unit: Decimal
) -> None:
    rounded = round_stakes(prices, Decimal(total), unit)
    assert all(stake % unit == 0 for stake in rounded.stakes)
    spread = max(rounded.payouts) - min(rounded.payouts)
    assert spread <= unit * Decimal(repr(max(prices))) + Decimal("0.01")
    assert rounded.profit == min(rounded.payouts) - sum(rounded.stakes)


# ---------------------------------------------------------------- Kelly


def test_kelly_worked_example_with_fraction_and_cap() -> None:
    # p = 0.58 at 1.95: f* = (0.58*1.95 - 1)/0.95 = 0.131/0.95 = 0.137895
    full = kelly_stake(0.58, 1.95, Decimal(1000))
    assert full.full_kelly == pytest.approx(0.131 / 0.95) and full.stake == Decimal("137.89")
    assert full.expected_value == pytest.approx(0.131)
    half = kelly_stake(0.58, 1.95, Decimal(1000), fraction=0.5)
    assert half.stake == Decimal("68.94") and not half.capped
    capped = kelly_stake(0.58, 1.95, Decimal(1000), max_fraction=0.05)
    assert capped.applied_fraction == 0.05 and capped.capped and capped.stake == Decimal("50.00")
    assert kelly_stake(0.40, 1.95, Decimal(1000)).stake == 0  # negative edge: no bet


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1.01, max_value=50))
def test_kelly_is_zero_at_zero_edge(d: float) -> None:
    assert kelly_fraction(1 / d, d) == pytest.approx(0, abs=1e-12)
    assert kelly_fraction(0.9 / d, d) == 0


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.02, max_value=0.98), st.floats(min_value=1.05, max_value=20))
def test_kelly_maximises_expected_log_growth_on_a_grid(p: float, d: float) -> None:
    f_star = kelly_fraction(p, d)
    grid = [i / 1000 for i in range(1000)]  # 0 .. 0.999
    best = max(grid, key=lambda f: log_growth(p, d, f))
    assert abs(best - f_star) <= 0.001 + 1e-9
    assert log_growth(p, d, f_star) >= log_growth(p, d, best) - 1e-12


# ---------------------------------------------------------------- margins by bookmaker and movement


def test_bookmaker_margins_lowest_first() -> None:
    board = [
        event(book("sharp", "h2h", ("X", 1.98), ("Y", 1.98)), book("soft", "h2h", ("X", 1.87), ("Y", 1.87))),
        event(book("sharp", "h2h", ("X", 2.5), ("Y", 1.6)),
              book("soft", "totals", ("Over", 1.9, 220.5), ("Under", 1.9, 220.5))),
    ]  # fmt: skip
    margins = bookmaker_margins(board, "h2h")
    assert [m.bookmaker for m in margins] == ["sharp", "soft"]
    sharp = margins[0]
    assert sharp.books == 2
    assert sharp.min_overround == pytest.approx(2 / 1.98 - 1) and sharp.max_overround == pytest.approx(
        1 / 2.5 + 1 / 1.6 - 1
    )


def test_movement_opening_latest_and_biggest_move() -> None:
    points = [
        PricePoint("a", "h2h", "X", None, None, 2.00, NOW),
        PricePoint("a", "h2h", "X", None, None, 2.00, NOW + 60),  # unchanged snapshot
        PricePoint("a", "h2h", "X", None, None, 1.80, NOW + 120),  # +5.56 points of probability
        PricePoint("a", "h2h", "X", None, None, 1.75, NOW + 180),
        PricePoint("b", "h2h", "X", None, None, 2.10, NOW),
    ]
    series = odds_movement(points)
    first = series[0]
    assert (first.bookmaker, first.opening, first.latest, first.changes) == ("a", 2.00, 1.75, 2)
    assert first.probability_change == pytest.approx(1 / 1.75 - 1 / 2.0)
    assert first.biggest_move is not None and first.biggest_move.at == NOW + 120
    assert first.biggest_move.probability_change == pytest.approx(1 / 1.8 - 1 / 2.0)
    assert series[1].changes == 0 and series[1].biggest_move is None


# ---------------------------------------------------------------- robustness: an answer or a DomainValueError

odds_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["5/2", "0/1", "1/0", "-1/2", "evens", "EVS", "1e999", "-0", "", " ", "+", "1/", "/2", "nan"]),
    st.text(max_size=50),
)


@settings(max_examples=400, deadline=None)
@given(odds_text, st.sampled_from(["decimal", "american", "fractional", "probability"]))
def test_parse_and_format_never_fail_with_anything_but_a_named_domain_error(text: str, fmt: str) -> None:
    try:
        d = parse_odds(text, fmt, "value")  # type: ignore[arg-type]
    except DomainValueError as error:
        assert error.argument == "value"
        return
    assert 1 < d <= 1_000_001
    for shown in ("decimal", "american", "fractional", "probability"):
        format_odds(d, shown)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=1.000001, max_value=1_000_000), min_size=2, max_size=30))
def test_shin_answers_or_says_it_has_no_solution(prices: list[float]) -> None:
    try:
        result = shin_probabilities(prices)
    except DomainValueError as error:
        assert error.argument == "odds"
        return
    assert all(0 <= p <= 1 for p in result.probabilities)
    assert sum(result.probabilities) == pytest.approx(1, abs=1e-6)


def test_shin_without_a_solution_is_a_domain_error() -> None:
    with pytest.raises(DomainValueError, match="no solution"):
        shin_probabilities([1.01, 1.01, 1.01])  # S = 2.97: the iteration diverges


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=1e-9, max_value=0.999999999),
    st.floats(min_value=1.000001, max_value=1_000_000),
    st.floats(min_value=1e-6, max_value=1),
    st.floats(min_value=1e-6, max_value=1),
)
def test_kelly_stake_is_finite_and_within_the_cap(p: float, d: float, fraction: float, cap: float) -> None:
    result = kelly_stake(p, d, Decimal(10**9), fraction, cap)
    assert 0 <= result.applied_fraction <= cap and math.isfinite(result.expected_log_growth)
    assert 0 <= result.stake <= Decimal(10**9) * Decimal(repr(cap))
