"""Parsing The Odds API's JSON into the domain: whatever arrives, the parser answers with the events it
could read and counts the rest with a reason; it never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nt_mcp.adapters.odds.parse import parse_events, to_seconds

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
event_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(max_size=10), st.integers()),
        "sport_key": st.sampled_from(["basketball_nba", "", None]),
        "commence_time": st.one_of(st.sampled_from(["2030-01-01T00:00:00Z", "soon", "9999-12-31T00:00:00Z"]),
                                   st.floats(allow_nan=True, allow_infinity=True), st.integers()),
        "bookmakers": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.sampled_from(["a", "b", "", None]),
                    "last_update": st.one_of(st.none(), st.just("2029-12-31T23:00:00Z"), json_values),
                    "markets": st.lists(
                        st.fixed_dictionaries(
                            {
                                "key": st.sampled_from(["h2h", "spreads", "h2h_lay", None]),
                                "outcomes": st.lists(
                                    st.fixed_dictionaries(
                                        {
                                            "name": st.sampled_from(["X", "Y", "", None]),
                                            "price": st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                                               st.integers(), st.text(max_size=5), st.booleans()),
                                        },
                                        optional={"point": json_values, "description": json_values},
                                    ),
                                    max_size=4,
                                ),
                            },
                            optional={"last_update": json_values},
                        ),
                        max_size=3,
                    ),
                }
            ),
            max_size=3,
        ),
    }
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(event_like, json_values), max_size=5), st.sampled_from(["decimal", "american"]))
def test_any_json_parses_into_events_or_counted_skips(raw: list[Any], price_format: str) -> None:
    board = parse_events(raw, price_format)  # type: ignore[arg-type]
    assert board.skipped >= 0 and len(board.skip_reasons) <= 20
    for parsed in board.events:
        event = parsed.odds
        assert 0 <= event.commence_time <= 4_102_444_800
        for book in event.books:
            assert book.outcomes and len(book.signature) == len(book.outcomes)
            assert all(1 < o.price <= 1_000_001 for o in book.outcomes)
            assert all(o.point is None or abs(o.point) < 1_000_000 for o in book.outcomes)


def test_times_outside_1970_2100_are_not_times() -> None:
    assert to_seconds("2030-01-01T00:00:00Z") == 1_893_456_000
    assert to_seconds(1_893_456_000) == 1_893_456_000
    for bad in (1e20, -5, "9999-12-31T00:00:00Z", "0001-01-01", float("nan"), True, "soon", None):
        assert to_seconds(bad) is None
