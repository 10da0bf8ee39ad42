"""Argument types shared by every tool: one way to take a moment in time, a decimal amount, a free-text string.

Use these in tool signatures instead of bare ``datetime``/``Decimal``/``str`` so every tool accepts and
refuses the same things with the same words:

- `UtcDateTime` / `OptionalUtcDateTime`: an ISO 8601 date (``2024-01-01`` = midnight UTC), a datetime
  without offset (taken as UTC) or with one (converted to UTC). The handler always gets an aware UTC
  ``datetime``. Moments outside ``[EARLIEST, LATEST]`` are refused naming the argument and the range,
  so no tool ever computes with year 1 or year 9999 (date arithmetic there overflows).
- `bounded_decimal(...)`: a finite decimal within ``[minimum, maximum]`` with at most ``max_places``
  decimal places, accepted from a JSON string or number. Huge exponents (``1E+999999``) are refused
  before any arithmetic, and the error message never echoes more than a few characters of the input.
- `Text(max_length)`: a string without NUL, other C0 control characters (tab and newline allowed when
  ``multiline``) or lone surrogates; such characters can never be stored or looked up.

Before any tool's own validation, the server checks every call's raw arguments once with
`unclean_argument` (`server.app`): no string anywhere (values or object keys, at any depth) may hold a
NUL, a C0 control character other than tab, newline and carriage return, or a lone surrogate; no
number may be NaN or infinite (JSON has neither); nothing may nest deeper than `MAX_NESTING` levels.
Such a call is refused with VALIDATION_ERROR naming the argument (``param_grid.fast[2]``) and runs
nothing, so no handler, query or stored row ever sees such a value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
DECIMAL_PATTERN = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
DATETIME_HELP = "ISO 8601 date or date-time; a date is midnight UTC, a time without offset is UTC"
MAX_NESTING = 32


def _short(value: Any, limit: int = 24) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def to_utc(value: Any) -> Any:
    """Parse a date / datetime / ISO string into an aware UTC datetime (anything else is left to pydantic)."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ValueError("not an ISO 8601 date or date-time (too long)")
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text or " " in text else None
            if value is None:
                value = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{_short(text)!r} is not an ISO 8601 date or date-time") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    if isinstance(value, datetime):
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError(f"must lie between {EARLIEST.date()} and {LATEST.date()}") from None
        if not EARLIEST <= value <= LATEST:
            raise ValueError(f"must lie between {EARLIEST.date()} and {LATEST.date()}, got {value.date()}")
    return value


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(to_utc),
    WithJsonSchema({"type": "string", "description": DATETIME_HELP}),
]
OptionalUtcDateTime = Annotated[
    datetime | None,
    BeforeValidator(lambda v: None if v is None else to_utc(v)),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}], "description": DATETIME_HELP}),
]


def bounded_decimal(
    *, minimum: Decimal | str | int, maximum: Decimal | str | int, max_places: int, exclusive_minimum: bool = True
) -> Any:
    """An ``Annotated[Decimal, ...]`` accepting a JSON string or number within the bounds.

    ``exclusive_minimum`` (default) refuses the minimum itself (use ``minimum=0`` for "greater than zero").
    """
    low, high = Decimal(minimum), Decimal(maximum)

    def parse(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, float | int):
            value = repr(value) if isinstance(value, float) else str(value)
        if not isinstance(value, str | Decimal):
            raise ValueError("must be a decimal number or a string holding one")
        if isinstance(value, str) and len(value.strip()) > 40:
            raise ValueError("must be a decimal number of at most 40 characters")
        try:
            number = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise ValueError(f"{_short(value)!r} is not a decimal number") from None
        if not number.is_finite():
            raise ValueError("must be a finite number")
        if number > high or number < low or (exclusive_minimum and number == low):
            relation = "greater than" if exclusive_minimum else "at least"
            raise ValueError(f"must be {relation} {low} and at most {high}, got {_short(number)}")
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > max_places:
            raise ValueError(f"has more than {max_places} decimal places")
        return number

    schema: dict[str, Any] = {
        "anyOf": [
            {"type": "number"},
            {"type": "string", "pattern": r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"},
        ],
        "description": f"decimal, {'>' if exclusive_minimum else '>='} {low} and <= {high}, "
        f"at most {max_places} decimal places",
    }
    return Annotated[Decimal, BeforeValidator(parse), WithJsonSchema(schema)]


def _clean_text(multiline: bool) -> Any:
    allowed = {"\t", "\n", "\r"} if multiline else set()

    def check(value: str) -> str:
        for char in value:
            code = ord(char)
            if (code < 32 and char not in allowed) or code == 127:
                raise ValueError("must not contain control characters (e.g. NUL)")
            if 0xD800 <= code <= 0xDFFF:
                raise ValueError("must not contain unpaired surrogate characters")
        return value

    return AfterValidator(check)


def Text(max_length: int, *, min_length: int = 1, multiline: bool = False, **field: Any) -> Any:
    """``Annotated[str, ...]``: ``min_length``..``max_length`` characters, no control characters or lone
    surrogates. Extra keyword arguments (``description``, ``pattern``) go to ``Field``."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length, **field), _clean_text(multiline)]


_UNCLEAN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def _text_problem(text: str) -> str | None:
    """What ``text`` holds that it may not: NUL, another control character (tab, newline and carriage
    return are fine), a lone surrogate. One regular-expression scan: a 1 MB string costs microseconds."""
    found = _UNCLEAN.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code == 0:
        return "NUL characters"
    return "unpaired surrogate characters" if code >= 0xD800 else "control characters"


def unclean_argument(arguments: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first argument no tool may receive, as ``(path, reason)``; None when all are clean.

    Checks strings (and object keys) for NUL, C0 control characters other than tab/newline/carriage
    return, and lone surrogates; numbers for NaN and infinities; and nesting deeper than `MAX_NESTING`.
    Iterative, so no input can exhaust the stack."""
    stack: list[tuple[str, Any, int]] = [(str(name), value, 1) for name, value in reversed(list(arguments.items()))]
    for name, _ in arguments.items():
        found = _text_problem(str(name))
        if found is not None:
            return _short(str(name).encode("unicode_escape").decode("ascii"), 60), f"argument name contains {found}"
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            found = _text_problem(value)
            if found is not None:
                return path, f"must not contain {found}"
        elif isinstance(value, float) and not math.isfinite(value):
            return path, "must be a finite number (NaN and Infinity are not JSON)"
        elif isinstance(value, dict | list | tuple):
            if depth >= MAX_NESTING:
                return path, f"is nested deeper than {MAX_NESTING} levels"
            if isinstance(value, dict):
                for key, item in reversed(list(value.items())):
                    key_text = str(key)
                    found = _text_problem(key_text)
                    if found is not None:
                        return path, f"has a key containing {found}"
                    stack.append((f"{path}.{_short(key_text, 40)}", item, depth + 1))
            else:
                stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in reversed(list(enumerate(value))))
    return None
