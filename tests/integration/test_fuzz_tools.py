"""Every registered tool fuzzed through the real MCP client, from its own published input schema.

For each tool (the list comes from the server registry, so a tool added tomorrow is fuzzed without a
line of test code) the test calls it with:

- arguments generated from the tool's input schema (`tests.schema_strategies`), ``NT_FUZZ_EXAMPLES``
  per tool (default 8; set it higher for a longer run), deterministic (``derandomize``), with a
  vocabulary of plausible words (tickers, ISO dates, timeframes, sides, the strategies of the domain
  registry) and words by common argument name (``symbol``, ``strategy``, ``start``, ``end``), so that
  generated calls reach the handlers;
- the hostile families, each value put into one argument of the first generated call that succeeded
  (or the first generated call): NUL, lone surrogates, control
  characters, a 1 MB string, path traversal, SQL fragments, format strings, far-past and far-future
  dates, huge and tiny numbers, a 200-deep object, a 10,000-item list, wrong types; plus an unknown
  argument and no arguments at all. (NaN and Infinity cannot travel through the MCP client, which
  writes them as null; `test_nan_and_infinity_in_raw_json_are_refused` sends them as raw JSON.)

Every answer must: arrive before the tool deadline (plus slack), never be INTERNAL, carry only a code
documented in `nt_mcp.errors.ERROR_CODES` (with ``retry_after_s`` when retryable, a short message,
the argument named on VALIDATION_ERROR), and never show a traceback, a source path or a secret. Every
call leaves exactly one audit row. Tools that move money are fuzzed too, on the paper broker.

Storage is PostgreSQL with Redis (the production shape): PostgreSQL is the backend that refuses NUL
and lone surrogates. `test_fuzz_through_a_postgresql_outage` repeats a shorter run while PostgreSQL
is stopped and started again, and then requires an empty spool, every call in the audit log, and the
dead letters listed by `nt-mcp dlq list`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from mcp import Client
from mcp_types import CallToolResult, TextContent

from nt_mcp.errors import ERROR_CODES, MAX_MESSAGE_CHARS
from nt_mcp.infra.schema import audit_log
from nt_mcp.server.app import build_server
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.services import Services
from tests.cli import run_cli
from tests.conftest import create_database, drop_database, make_settings
from tests.http_support import INIT_BODY, MCP_HEADERS, http_settings, make_token, serve_in_thread, sse_events
from tests.integration.test_resilience import eventually
from tests.results import error_of
from tests.schema_strategies import HINTS, VOCABULARY, draw, from_schema
from tests.servers import PostgresServer

FUZZ_EXAMPLES = int(os.environ.get("NT_FUZZ_EXAMPLES", "8"))
FUZZ_TIMEOUT_S = 5.0
DEADLINE_SLACK_S = 3.0  # the audit write and the client round trip after the tool's deadline
DB_PASSWORD = "fuzz-db-password-4711"
JWT_SECRET = "fuzz-jwt-secret-0123456789-0123456789"
TOOL_NAMES = [spec.name for spec in all_tools()]
LEAK_MARKERS = ("Traceback", 'File "', "site-packages", "/work/", "nt_mcp/", DB_PASSWORD, JWT_SECRET)
SOURCE_PATH = re.compile(r"[/\\][\w.-]+\.py\b")  # /any/where/module.py


# Defects the fuzz finds that another branch owns and fixes; each entry is a strict xfail, so the merge
# that brings the fix turns it into a failure until the entry is deleted. Keep this empty on main.
KNOWN_ELSEWHERE: dict[str, str] = {}  # tool -> a known defect being fixed elsewhere (strict xfail)


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"a": value}
    return value


HOSTILE_STRINGS: list[str] = [
    "a\x00b",
    "\ud886",
    "\ud886\udc27",
    "\x1b[31mred\x1b[0m",
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\config",
    "' OR 1=1; DROP TABLE orders; --",
    "%s%n%x{0}${jndi:x}",
    "0001-01-01",
    "0001-06-01T00:00:00",
    "9999-12-31T23:59:59",
    "1969-12-31T23:59:59Z",
    "2100-01-01T00:00:01+00:00",
    "2024-02-30",
    "1E+999999",
    "-1",
    "",
    "   ",
    "é中🙂\u202e",
    "nt-escaped:x",
]
HUGE_STRING = "x" * 1_000_000
HOSTILE_NUMBERS: list[Any] = [10**30, -(10**30), -1, 0, 2**63, 1e308, -1e308, 1e-30, 0.30000000000000004]
HOSTILE_SHAPES: list[Any] = [_deep(200), list(range(10_000)), {}, [], True, None, {"$ref": "#/$defs/x"}]


def _accepts(schema: dict[str, Any], kind: str) -> bool:
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return any(o.get("type") == kind or (kind == "number" and o.get("type") == "integer") for o in options)


def hostile_calls(schema: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Each hostile value in each argument it fits (and a wrong type in each), into ``base``."""
    calls: list[dict[str, Any]] = []
    properties = schema.get("properties", {})
    first_string = next((name for name, sub in properties.items() if _accepts(sub, "string")), None)
    for name, sub in properties.items():
        values: list[Any] = list(HOSTILE_SHAPES)
        if _accepts(sub, "string"):
            values += HOSTILE_STRINGS + ([HUGE_STRING] if name == first_string else [])
        if _accepts(sub, "number"):
            values += HOSTILE_NUMBERS
        calls += [base | {name: value} for value in values]
        calls.append(base | {name: "\x00"} if not _accepts(sub, "string") else base | {name: 12345})
    return [*calls, base | {"zzz_unknown": 1}, base | {"a\x00b": 1}, {}]


def _texts(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def check(tool: str, arguments: dict[str, Any], result: CallToolResult, elapsed: float) -> str:
    """Assert the answer is one a client can rely on; return its outcome ("ok" or the error code)."""
    shown = json.dumps(arguments, default=str)[:300]
    assert elapsed < FUZZ_TIMEOUT_S + DEADLINE_SLACK_S, f"{tool} took {elapsed:.1f} s with {shown}"
    text = _texts(result)
    for marker in LEAK_MARKERS:
        assert marker not in text, f"{tool} leaked {marker!r} with {shown}: {text[:500]}"
    assert not SOURCE_PATH.search(text), f"{tool} showed a source path with {shown}: {text[:500]}"
    if not result.is_error:
        return "ok"
    error = error_of(result)
    code = error["code"]
    assert code != "INTERNAL", f"{tool} answered INTERNAL with {shown}"
    assert code in ERROR_CODES, f"{tool} answered the undocumented code {code!r} with {shown}"
    assert len(error["message"]) <= MAX_MESSAGE_CHARS, f"{tool}: a {len(error['message'])}-character message"
    if error["retryable"]:
        assert error.get("retry_after_s") is not None, f"{tool}: retryable {code} without retry_after_s"
    if code == "VALIDATION_ERROR":
        assert error.get("context", {}).get("argument"), f"{tool}: VALIDATION_ERROR naming no argument: {error}"
    return str(code)


async def fuzz_tool(client: Client, tool: str, calls: list[dict[str, Any]]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for arguments in calls:
        started = time.monotonic()
        result = await client.call_tool(tool, arguments)
        outcome = check(tool, arguments, result, time.monotonic() - started)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


async def _audit_count(services: Services, tool: str | None = None) -> int:
    await services.audit.flush()  # read-only calls' rows are batched off the reply path
    query = sa.select(sa.func.count()).select_from(audit_log)
    if tool is not None:
        query = query.where(audit_log.c.tool == tool)
    async with services.db.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def _with_password(url: str) -> str:
    """The same URL with a password (the test server trusts local users, so any password works)."""
    return url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)


def fuzz_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Any:
    return make_settings(
        tmp_path,
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        rate_limit_per_minute=10**7,
        tool_timeout_s=FUZZ_TIMEOUT_S,
        **overrides,
    )


@pytest.fixture(scope="module")
async def fuzz_stack(
    pg_admin_url: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    url = await create_database(pg_admin_url)
    settings_ = fuzz_settings(tmp_path_factory.mktemp("fuzz"), _with_password(url), redis_url=redis_server_url)
    services = await Services.start(settings_)
    try:
        yield services
    finally:
        await services.close()
        await drop_database(pg_admin_url, url)


async def test_the_fuzz_covers_every_registered_tool(fuzz_stack: Services) -> None:
    async with Client(build_server(fuzz_stack)) as client:
        listed = sorted(t.name for t in (await client.list_tools()).tools)
    assert listed == sorted(TOOL_NAMES)


@pytest.mark.parametrize(
    "tool",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_ELSEWHERE[name]))
        if name in KNOWN_ELSEWHERE
        else name
        for name in TOOL_NAMES
    ],
)
async def test_fuzz_tool(fuzz_stack: Services, tool: str) -> None:
    async with Client(build_server(fuzz_stack)) as client:
        schema = next(t.input_schema for t in (await client.list_tools()).tools if t.name == tool)
        candidates = draw(from_schema(schema, vocabulary=VOCABULARY, hints=HINTS), 4 * FUZZ_EXAMPLES)
        before = await _audit_count(fuzz_stack, tool)
        outcomes: dict[str, int] = {}
        base: dict[str, Any] | None = None
        generated = []
        for arguments in candidates:  # FUZZ_EXAMPLES calls, more while none has succeeded yet
            if len(generated) >= FUZZ_EXAMPLES and base is not None:
                break
            generated.append(arguments)
            outcome = (await fuzz_tool(client, tool, [arguments])).popitem()[0]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "ok" and base is None:
                base = arguments
        base = base if base is not None else (generated[0] if generated else {})
        hostile = hostile_calls(schema, base)
        for outcome, count in (await fuzz_tool(client, tool, hostile)).items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    made = len(generated) + len(hostile)
    print(f"{tool}: {made} calls {outcomes}; base {json.dumps(base)[:200]}")
    assert sum(outcomes.values()) == made
    await eventually(lambda: fuzz_stack.spool.count() == 0, timeout_s=10)
    assert await _audit_count(fuzz_stack, tool) - before == made  # every call, refused or not


async def test_nan_and_infinity_in_raw_json_are_refused(tmp_path: Path) -> None:
    """JSON has no NaN or Infinity, but Python's parsers accept the tokens: send them as raw JSON-RPC."""
    settings_ = http_settings(tmp_path)
    token = make_token(settings_, scope="read backtest")
    headers = MCP_HEADERS | {"authorization": f"Bearer {token}", "mcp-protocol-version": "2025-06-18"}
    raw_calls = [
        '{"strategy": "sma_crossover", "symbol": "SPY", "param_ranges": {"fast": {"start": NaN, "stop": 9, '
        '"step": 1}}}',
        '{"strategy": "sma_crossover", "symbol": "SPY", "initial_cash": Infinity}',
        '{"strategy": "sma_crossover", "symbol": "SPY", "params": {"fast": -Infinity}}',
    ]
    answers = []
    with serve_in_thread(settings_) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
            init = await http.post("/mcp", json=INIT_BODY)
            session = {"mcp-session-id": init.headers["mcp-session-id"]}
            await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            for i, arguments in enumerate(raw_calls):
                tool = "optimize_strategy" if "param_ranges" in arguments else "run_backtest"
                body = f'{{"jsonrpc": "2.0", "id": {i + 2}, "method": "tools/call", "params": {{"name": "{tool}", '
                body += f'"arguments": {arguments}}}}}'
                response = await http.post("/mcp", content=body.encode(), headers=session)
                answers.append(response)
    for response in answers:
        assert response.status_code in (200, 400), response.text
        text = response.text
        assert "INTERNAL" not in text and "Traceback" not in text
        if response.status_code == 200:  # parsed: the tool result must be a VALIDATION_ERROR naming the argument
            is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
            data = [event["data"] for event in sse_events(text) if event.get("data")] if is_sse else [text]
            payload = json.loads(data[-1])
            envelope = json.loads(payload["result"]["content"][0]["text"])["error"]
            assert envelope["code"] == "VALIDATION_ERROR", envelope
            assert "finite" in envelope["message"] or "valid number" in envelope["message"], envelope


OUTAGE_STRINGS = ["a\x00b", "\ud886", "' OR 1=1; --", "0001-01-01"]


async def test_fuzz_through_a_postgresql_outage(own_postgres: PostgresServer, tmp_path: Path) -> None:
    url = await create_database(own_postgres.admin_url)
    settings_ = fuzz_settings(
        tmp_path, _with_password(url), db_connect_retries=2, db_pool_timeout_s=2, spool_replay_interval_s=0.3
    )
    services = await Services.start(settings_)
    made = 0
    outcomes: dict[str, int] = {}
    halted_at, resumed_at = len(TOOL_NAMES) // 3, 2 * len(TOOL_NAMES) // 3
    async with Client(build_server(services)) as client:
        schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        for index, tool in enumerate(TOOL_NAMES):
            if index == halted_at:
                own_postgres.halt()
                # a write an older server spooled as it was: jsonb refuses its NUL, so it must end as a dead letter
                services.spool.append("insert", "audit_log", _raw_audit_row({"echo": "a\x00"}))
            if index == resumed_at:
                own_postgres.resume()
            schema = schemas[tool]
            string_argument = next((n for n, s in schema.get("properties", {}).items() if _accepts(s, "string")), None)
            calls = draw(from_schema(schema, vocabulary=VOCABULARY, hints=HINTS), 3)
            base = calls[0] if calls else {}
            if string_argument is not None:
                calls += [base | {string_argument: value} for value in OUTAGE_STRINGS]
            for name, count in (await fuzz_tool(client, tool, calls)).items():
                outcomes[name] = outcomes.get(name, 0) + count
            made += len(calls)
    await eventually(lambda: services.spool.count() == 0, timeout_s=30)
    pending = services.spool.count()
    audited = await _audit_count(services)
    letters = await services.replayer.dead_letters()
    listed = run_cli(tmp_path, "dlq", "list", NT_DATABASE_URL=services.settings.sqlalchemy_url)
    await services.close()
    print(f"{made} calls through the outage: {outcomes}")
    assert outcomes.get("DATABASE_ERROR", 0) > 0  # the outage was felt...
    assert pending == 0  # ...the spool emptied once PostgreSQL was back...
    assert audited == made  # ...every call is in the audit log...
    assert [json.loads(x)["where"] for x in listed.stdout.splitlines() if x.startswith("{")] == ["dead_letters"]
    assert [letter["payload"]["values"]["arguments"] for letter in letters] == [{"echo": "a\x00"}]  # ...listed


def _raw_audit_row(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "ts": "2026-11-22T00:00:00+00:00",
        "principal": "older-server",
        "tool": "ping",
        "outcome": "ok",
        "duration_ms": 1.0,
        "correlation_id": "raw",
        "arguments": arguments,
    }


async def test_a_call_never_waits_on_a_stopped_sweep(fuzz_stack: Services) -> None:
    """The deadline holds for the heaviest schema-valid call too (here: a big sweep stopped at the deadline)."""
    arguments = {
        "strategy": "sma_crossover",
        "symbol": "SPY",
        "timeframe": "5Min",
        "start": "2019-01-01",
        "param_grid": {"fast": [5, 10]},
        "param_ranges": {"slow": {"start": 20, "stop": 10_000, "step": 10}},
    }  # ~1,998 pairs x ~400k training bars (0.8 of NT_OPTIMIZE_MAX_WORK): from 2022 the sweep, compiled end to
    # end, finished inside the 5 s deadline
    async with Client(build_server(fuzz_stack)) as client:
        started = time.monotonic()
        result = await client.call_tool("optimize_strategy", arguments)
        elapsed = time.monotonic() - started
    assert check("optimize_strategy", arguments, result, elapsed) == "TIMEOUT"
    await asyncio.sleep(1.5)  # let the chunk that was running end before the next test
