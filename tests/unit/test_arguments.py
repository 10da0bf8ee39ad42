"""The shared argument types: dates as UTC within a range, bounded decimals, clean text."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from nt_mcp.tools.arguments import OptionalUtcDateTime, Text, UtcDateTime, bounded_decimal

Qty = bounded_decimal(minimum=0, maximum="1e9", max_places=9)


class Args(BaseModel):
    when: UtcDateTime
    until: OptionalUtcDateTime = None
    qty: Qty = Decimal(1)
    name: Text(10) = "x"  # type: ignore[valid-type]
    note: Text(20, multiline=True) = "x"  # type: ignore[valid-type]


def _message(**kwargs: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Args(**{"when": "2024-01-01", **kwargs})
    return str(caught.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T10:30", datetime(2024, 1, 1, 10, 30, tzinfo=UTC)),
        ("2024-01-01T10:30:00Z", datetime(2024, 1, 1, 10, 30, tzinfo=UTC)),
        ("2024-01-01T10:30:00+02:00", datetime(2024, 1, 1, 8, 30, tzinfo=UTC)),
        ("2024-01-01 10:30", datetime(2024, 1, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_dates_and_naive_times_are_utc(given: str, expected: datetime) -> None:
    parsed = Args(when=given, until=given)
    assert parsed.when == expected and parsed.when.tzinfo is UTC and parsed.until == expected


@pytest.mark.parametrize("given", ["0001-06-01", "9999-12-31T23:59:59", "0001-01-01T00:00:00+14:00"])
def test_dates_outside_the_range_are_refused_with_the_range(given: str) -> None:
    assert "between 1970-01-01 and 2100-01-01" in _message(when=given)


def test_bad_dates_are_refused_briefly() -> None:
    assert "not an ISO 8601" in _message(when="next tuesday")
    assert len(_message(when="9" * 10_000)) < 600


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("1E+999999", "at most 1E+9"),
        ("1e-30", "more than 9 decimal places"),
        (0, "greater than 0"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        (True, "must be a number"),
        ("12abc", "not a decimal number"),
    ],
)
def test_decimals_are_bounded(given: object, fragment: str) -> None:
    message = _message(qty=given)
    assert fragment in message and len(message) < 600


def test_decimals_accept_strings_and_numbers_exactly() -> None:
    assert Args(when="2024-01-01", qty="1.50").qty == Decimal("1.50")
    assert Args(when="2024-01-01", qty=0.1).qty == Decimal("0.1")
    assert Args(when="2024-01-01", qty=7).qty == Decimal(7)


@pytest.mark.parametrize("given", ["a\x00b", "a\x1bb", "a\nb"])
def test_single_line_text_refuses_control_characters(given: str) -> None:
    assert "control characters" in _message(name=given)


def test_multiline_text_allows_newlines_but_not_nul() -> None:
    assert Args(when="2024-01-01", note="a\nb\tc").note == "a\nb\tc"
    assert "control characters" in _message(note="a\x00")
