"""Pure pieces of the robustness work: the storable form, the central argument check, error codes,
database error classification, the Host allow-list, sweep chunking and call costs."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import exc

from nt_mcp.adapters.data.synthetic import generate_bars
from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.backtest.sweep import chunk_bytes, plan_sweep, sweep_sma_crossover
from nt_mcp.errors import ERROR_CODES, DatabaseError, ExternalAPIError, ValidationError
from nt_mcp.infra.db import is_connection_loss, is_permanent
from nt_mcp.infra.storable import ascii_json, restore, safe_text, storable
from nt_mcp.server.http import host_allowed
from nt_mcp.tools.arguments import unclean_argument
from nt_mcp.tools.costs import backtest_cost, get_bars_cost

ROOT = Path(__file__).resolve().parents[2]


# -- the storable form ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a\x00b", "\ud886", "x\udc27y", "nt-escaped:already", "\x00" * 5 + "é中"])
def test_awkward_text_is_escaped_reversibly(text: str) -> None:
    stored = storable({"k": text, text: [text]})
    assert "\x00" not in ascii_json(stored)
    ascii_json(stored).encode("utf-8")  # no lone surrogate left
    assert all((isinstance(k, str) and k.isascii()) or k == "k" for k in stored)
    assert restore(stored) == {"k": text, text: [text]}


def test_plain_values_are_stored_as_they_are() -> None:
    value = {"symbol": "SPY", "qty": 1.5, "n": 3, "ok": True, "none": None, "list": ["é中🙂"]}
    assert storable(value) == value


def test_non_json_values_and_limits() -> None:
    stored = storable(
        {"nan": float("nan"), "inf": float("-inf"), "when": datetime(2024, 1, 2, tzinfo=UTC), "long": "x" * 5000}
    )
    assert stored["nan"] == "NaN" and stored["inf"] == "-Infinity"
    assert stored["when"] == "2024-01-02T00:00:00+00:00"
    assert stored["long"].startswith("x" * 4096) and re.search(r"…\[5000 chars, sha256 [0-9a-f]{16}\]$", stored["long"])
    deep: dict[str, object] = {}
    for _ in range(100):
        deep = {"a": deep}
    assert "nested deeper than 32 levels" in ascii_json(storable(deep))
    assert safe_text("a\x00\ud886") == "a\\x00\\ud886"


# -- the central argument check ------------------------------------------------------------------------


def _nested(levels: int) -> list[object]:
    value: list[object] = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("arguments", "path", "fragment"),
    [
        ({"echo": "a\x00"}, "echo", "NUL"),
        ({"echo": "a\x1b[0m"}, "echo", "control"),
        ({"echo": "\ud886"}, "echo", "surrogate"),
        ({"grid": {"fast": [1, 2, float("nan")]}}, "grid.fast[2]", "finite"),
        ({"grid": {"k\x00": 1}}, "grid", "key containing NUL"),
        ({"x": _nested(40)}, "x" + "[0]" * 31, "nested deeper than 32"),
    ],
)
def test_unclean_arguments_are_named(arguments: dict[str, object], path: str, fragment: str) -> None:
    found = unclean_argument(arguments)
    assert found is not None and found[0] == path and fragment in found[1]


def test_clean_arguments_pass_tabs_and_newlines_included() -> None:
    assert unclean_argument({"note": "a\tb\nc\r\n", "n": 1.5, "deep": {"a": [{"b": "é中🙂"}]}}) is None


# -- error codes ------------------------------------------------------------------------------------------


def test_every_documented_code_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [code for code in ERROR_CODES if f"| `{code}` |" not in readme]
    assert missing == []


def test_every_code_the_source_raises_is_documented() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "nt_mcp").rglob("*.py"))
    raised = set(re.findall(r"\bcode\s*=\s*\"([A-Z][A-Z_]+)\"", source))
    raised |= set(re.findall(r"\"((?:RISK|MARKET|IDEMPOTENCY)_[A-Z_]+)\"", source))
    assert raised - set(ERROR_CODES) == set()


def test_retryable_errors_always_say_when_to_retry() -> None:
    assert DatabaseError("down").to_dict()["retry_after_s"] == 2.0
    assert ExternalAPIError("503", service="x", status=503).to_dict()["retry_after_s"] == 1.0
    assert "retry_after_s" not in ExternalAPIError("422", service="x", status=422).to_dict()
    long = ValidationError("x" * 100_000, argument="y" * 10_000).to_dict()
    assert len(long["message"]) <= 1000 and len(long["context"]["argument"]) <= 200


# -- database errors by SQLSTATE and class, not by text ---------------------------------------------------


class _Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate


def _wrapped(orig: BaseException) -> exc.DBAPIError:
    return exc.DBAPIError("SELECT 1", {}, orig)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("orig", "loss", "permanent"),
    [
        (_Driver("the database system is shutting down", "57P03"), True, False),
        (_Driver("the database system is starting up", "57P03"), True, False),
        (_Driver("terminating connection due to administrator command", "57P01"), True, False),
        (_Driver("sorry, too many clients already", "53300"), True, False),
        (_Driver("connection failure", "08006"), True, False),
        (_Driver("invalid byte sequence for encoding UTF8: 0x00", "22021"), False, True),
        (_Driver("duplicate key value", "23505"), False, True),
        (_Driver('column "connection" does not exist', "42703"), False, True),  # the old text match said "lost"
        (_Driver("connection reset timeout broken pipe"), False, False),  # words alone decide nothing
    ],
)
def test_postgres_errors_are_classified_by_sqlstate(orig: BaseException, loss: bool, permanent: bool) -> None:
    error = _wrapped(orig)
    assert (is_connection_loss(error), is_permanent(error)) == (loss, permanent)


def test_sqlite_and_os_errors_are_classified_by_code_and_class() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # type: ignore[attr-defined]
    wording = sqlite3.OperationalError("no such column: connection")
    wording.sqlite_errorcode = 1  # type: ignore[attr-defined]
    assert is_connection_loss(exc.OperationalError("x", {}, busy))
    assert not is_connection_loss(exc.OperationalError("x", {}, wording))
    assert is_connection_loss(ConnectionRefusedError(111, "refused"))
    assert is_permanent(UnicodeEncodeError("utf-8", "\ud886", 0, 1, "surrogates not allowed"))


# -- Host allow-list ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:1", True),
        ("127.0.0.1:58443.evil.example", False),
        ("127.0.0.1:8000@evil", False),
        ("127.0.0.1:", False),
        ("127.0.0.1:123456", False),
        ("127.0.0.10:80", False),
        ("mcp.example.com", True),
        ("mcp.example.com.evil", False),
    ],
)
def test_host_allow_list_matches_name_and_port_exactly(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["127.0.0.1:*", "localhost:*", "mcp.example.com"]) is allowed


# -- sweep chunks ------------------------------------------------------------------------------------------


def test_sweep_chunks_stay_within_their_memory_and_work() -> None:
    n = 200_000
    chunks = plan_sweep([5, 10], list(range(20, 10_020, 10)), n, max_chunk_bytes=64 * 2**20)
    assert sum(len(c) for c in chunks) == 2 * 1000
    assert all(chunk_bytes(n, c) <= 64 * 2**20 for c in chunks)
    assert all(len(c) * n <= 25_000_000 for c in chunks)


def test_a_chunked_sweep_equals_one_pass() -> None:
    bars = generate_bars("SPY", "2022-01-01", "2024-01-01", "1Day")
    cfg = BacktestConfig(commission_pct=0.001)
    whole = sweep_sma_crossover(bars, [3, 5, 8], [10, 20, 30], cfg)
    tiny = sweep_sma_crossover(bars, [3, 5, 8], [10, 20, 30], cfg, max_chunk_bytes=1)
    assert np.array_equal(whole.fast, tiny.fast) and np.array_equal(whole.slow, tiny.slow)
    assert [m.as_dict() for m in whole.metrics] == [m.as_dict() for m in tiny.metrics]


def test_costs_follow_the_bars_a_call_touches() -> None:
    assert get_bars_cost({"limit": 100}) == 1 and get_bars_cost({"limit": 10_000}) == 11
    start, end = datetime(2012, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    assert backtest_cost({"timeframe": "1Day"}) == 2
    assert backtest_cost({"timeframe": "1Min", "start": start, "end": end}) == 11
