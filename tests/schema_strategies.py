"""Hypothesis strategies for the JSON values a JSON Schema describes: the subset pydantic publishes.

hypothesis-jsonschema would be the library for this, but its latest release (0.23.1) fails on the
Hypothesis versions this project uses (``'many' object has no attribute 'more'``), so this is the small
generator the fuzz test needs: ``type`` (object, array, string, integer, number, boolean, null),
``enum``, ``const``, ``anyOf``/``oneOf``, local ``$ref`` into ``$defs``, ``properties``/``required``/
``additionalProperties``, ``items``/``minItems``/``maxItems``, ``minLength``/``maxLength``/``pattern``,
``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``. Sizes are kept small (strings of at
most 40 characters, lists of at most 5 items): big and hostile values are the fuzz test's own families.

``vocabulary``: words that make a call plausible (tickers, ISO dates, strategy names); a string is drawn
from it about half the time (when the word fits the string's length and pattern), and numbers lean on
small round values, so that generated calls get past argument checks and reach the handlers.
``hints``: words by argument name (``symbol``: tickers, ``start``: dates, ...), drawn first for a
string argument of that name (or the items of an array argument of that name): conventions shared by
every tool, not knowledge of any one tool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from nt_mcp.domain.strategies import STRATEGIES

MAX_TEXT = 40
MAX_ITEMS = 5
_JSON_LEAF = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)
ANY_JSON = st.recursive(
    _JSON_LEAF | st.text(max_size=MAX_TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


ROUND_NUMBERS = (1, 2, 5, 10, 20, 50, 100, 200, 1000)


def from_schema(
    schema: dict[str, Any],
    root: dict[str, Any] | None = None,
    vocabulary: Sequence[str] = (),
    hints: Mapping[str, Sequence[str]] | None = None,
) -> st.SearchStrategy[Any]:
    """Values valid against ``schema`` (``root`` holds the ``$defs`` that ``$ref`` points into)."""
    root = root or schema
    return _Generator(root, tuple(vocabulary), dict(hints or {})).value(schema)


class _Generator:
    def __init__(self, root: dict[str, Any], vocabulary: tuple[str, ...], hints: dict[str, Sequence[str]]) -> None:
        self.root = root
        self.vocabulary = vocabulary
        self.hints = hints

    def value(self, schema: dict[str, Any], name: str | None = None) -> st.SearchStrategy[Any]:
        return _from_schema(schema, self, name)


def _from_schema(schema: dict[str, Any], gen: _Generator, name: str | None) -> st.SearchStrategy[Any]:
    root = gen.root
    if "$ref" in schema:
        return gen.value(root.get("$defs", {})[schema["$ref"].rsplit("/", 1)[-1]], name)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([gen.value(option, name) for option in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([gen.value({**schema, "type": k}, name) for k in kind])
    if kind == "object" or "properties" in schema:
        return _object(schema, gen)
    if kind == "array":
        items = gen.value(schema.get("items", {}), name) if schema.get("items") else ANY_JSON
        low = schema.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", MAX_ITEMS), MAX_ITEMS)))
    if kind == "string":
        general = _string(schema, gen.vocabulary)
        hinted = _fitting(schema, gen.hints.get(name or "", ()))
        return st.sampled_from(hinted) | general if hinted else general
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return _number(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY_JSON


def _object(schema: dict[str, Any], gen: _Generator) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    fixed = st.fixed_dictionaries(
        {name: gen.value(sub, name) for name, sub in properties.items() if name in required},
        optional={name: gen.value(sub, name) for name, sub in properties.items() if name not in required},
    )
    extra = schema.get("additionalProperties")
    if properties or not isinstance(extra, dict):
        return fixed
    keys = st.text(min_size=1, max_size=12)
    if gen.vocabulary:
        keys = st.sampled_from(gen.vocabulary) | keys
    return st.dictionaries(keys, gen.value(extra), max_size=3)


def _fitting(schema: dict[str, Any], words: Sequence[str]) -> list[str]:
    """The ``words`` a string schema accepts (length and pattern)."""
    low, high, pattern = schema.get("minLength", 0), schema.get("maxLength"), schema.get("pattern")
    return [
        w
        for w in words
        if low <= len(w) and (high is None or len(w) <= high) and (not pattern or re.fullmatch(pattern, w))
    ]


def _string(schema: dict[str, Any], vocabulary: Sequence[str]) -> st.SearchStrategy[str]:
    low = schema.get("minLength", 0)
    high = max(low, min(schema.get("maxLength", MAX_TEXT), MAX_TEXT))
    pattern = schema.get("pattern")
    words = _fitting(schema, vocabulary)
    if pattern is not None:
        matching = st.from_regex(pattern, fullmatch=True)
        anything: st.SearchStrategy[str] = matching.filter(lambda s: low <= len(s) <= high)
    else:
        anything = st.text(min_size=low, max_size=high)
    return st.sampled_from(words) | anything if words else anything


def _integer(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = int(schema["exclusiveMinimum"]) + 1
    if "exclusiveMaximum" in schema:
        high = int(schema["exclusiveMaximum"]) - 1
    round_ = [n for n in ROUND_NUMBERS if (low is None or n >= low) and (high is None or n <= high)]
    anything = st.integers(low, high)
    return st.sampled_from(round_) | anything if round_ else anything


def _number(schema: dict[str, Any]) -> st.SearchStrategy[float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    nice = [n / 100 for n in ROUND_NUMBERS] + list(ROUND_NUMBERS)
    fits = [
        float(n)
        for n in nice
        if (low is None or n > low or (n == low and "exclusiveMinimum" not in schema))
        and (high is None or n < high or (n == high and "exclusiveMaximum" not in schema))
    ]
    anything = st.floats(
        min_value=low,
        max_value=high,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )
    return st.sampled_from(fits) | anything if fits else anything


# Plausible words for the project's tools (see the module docstring).
TICKERS = ["SPY", "AAPL", "MSFT", "BRK.B"]
DATES = ["2024-01-02", "2023-06-30", "2024-03-01T15:30:00Z", "2024-06-28T20:00:00+02:00", "2023-01-01"]
PARAMETERS = sorted({p.name for spec in STRATEGIES.values() for p in spec.params})
VOCABULARY = [*TICKERS, *DATES, "1Day", "1Hour", "5Min", "buy", "sell", *STRATEGIES, *PARAMETERS]
# words by argument name: conventions every toolset shares (not knowledge of one tool)
HINTS: dict[str, list[str]] = {
    "symbol": TICKERS,
    "symbols": TICKERS,
    "strategy": list(STRATEGIES),
    "start": DATES[:3],
    "end": ["2024-06-28", "2024-12-31T21:00:00Z"],
    "qty": ["1", "2.5"],
}


def draw(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` deterministic examples of ``strategy`` (generation only: this is a corpus, not a test)."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found[:count]
