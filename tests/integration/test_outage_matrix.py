"""The outage matrix: PostgreSQL stopped, PostgreSQL shutting down (SQLSTATE 57P03), Redis frozen
(SIGSTOP) and Redis stopped, each against every registered tool through the real MCP client.

While everything is healthy, each tool gets a call that succeeds where one can be found: the family
calls below (an order placed, a backtest stored, ...) and, for every other tool, the first call
generated from its input schema that succeeds (`tests.schema_strategies`), so a tool added tomorrow is
in the matrix too. Then the outage starts and every one of those calls is made again:

- Redis frozen or stopped: every call still succeeds (cache and limits fall back to process memory)
  and ``server_status`` says ``degraded``, naming Redis;
- PostgreSQL stopped or shutting down: a call either still succeeds (it needs no storage) or answers
  a documented retryable code (``DATABASE_ERROR``, or an upstream's ``SERVICE_UNAVAILABLE`` /
  ``EXTERNAL_API_ERROR`` / ``TIMEOUT``) with ``retry_after_s``; the tools whose answer lives in storage
  answer ``DATABASE_ERROR``; nothing is INTERNAL; once PostgreSQL is back the spool empties and every
  call is in the audit log.

No call may outlive the tool deadline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from mcp import Client
from mcp_types import CallToolResult

from nt_mcp.errors import ERROR_CODES
from nt_mcp.infra.schema import audit_log
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.conftest import create_database, make_settings
from tests.integration.test_resilience import eventually
from tests.results import error_of
from tests.schema_strategies import HINTS, VOCABULARY, draw, from_schema
from tests.servers import PostgresServer, RedisServer

TIMEOUT_S = 8.0
RETRYABLE = {code for code, (retryable, _) in ERROR_CODES.items() if retryable} - {"RATE_LIMITED"}
# Tools whose answer is read from or written to storage: in a PostgreSQL outage they must say so.
NEEDS_STORAGE = {"get_audit_log", "get_account", "get_positions", "get_orders", "get_order", "list_backtests",
                 "get_backtest", "run_backtest", "place_order"}  # fmt: skip


def family_calls(seed: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A call that succeeds for each tool family, using what `_seed` stored."""
    return {
        "get_order": {"order_id": seed["order_id"]},
        "get_backtest": {"backtest_id": seed["backtest_id"]},
        "place_order": {"symbol": "SPY", "side": "buy", "qty": "1"},
        "close_position": {"symbol": "SPY", "qty": "1"},
        "cancel_order": {"order_id": seed["order_id"]},  # already filled: a business answer, not an outage one
        "optimize_strategy": {"strategy": "sma_crossover", "symbol": "SPY", "param_grid": {"fast": [5, 10]}},
        "run_backtest": {"strategy": "sma_crossover", "symbol": "SPY"},
        "execute_strategy": {"strategy": "sma_crossover", "symbols": ["SPY"]},
    }


async def _seed(client: Client) -> dict[str, str]:
    placed = await client.call_tool("place_order", {"symbol": "SPY", "side": "buy", "qty": "3"})
    assert not placed.is_error, placed.content
    stored = await client.call_tool("run_backtest", {"strategy": "sma_crossover", "symbol": "SPY"})
    assert not stored.is_error, stored.content
    return {
        "order_id": placed.structured_content["order"]["id"],
        "backtest_id": stored.structured_content["backtest_id"],
    }


async def _healthy_calls(client: Client) -> dict[str, dict[str, Any]]:
    """One call per registered tool; one that succeeds now wherever one was found."""
    calls = family_calls(await _seed(client))
    for tool in (await client.list_tools()).tools:
        if tool.name in calls:
            continue
        candidates = draw(from_schema(tool.input_schema, vocabulary=VOCABULARY, hints=HINTS), 24)
        calls[tool.name] = candidates[0] if candidates else {}
        for arguments in candidates:
            if not (await client.call_tool(tool.name, arguments)).is_error:
                calls[tool.name] = arguments
                break
    return calls


async def _call_all(client: Client, calls: dict[str, dict[str, Any]]) -> dict[str, CallToolResult]:
    results = {}
    for tool, arguments in calls.items():
        started = time.monotonic()
        results[tool] = await client.call_tool(tool, arguments)
        elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT_S + 3, f"{tool} took {elapsed:.1f} s"
    return results


def _outcome(result: CallToolResult) -> str:
    return "ok" if not result.is_error else str(error_of(result)["code"])


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    postgres, redis_server = PostgresServer.start(), RedisServer.start()
    try:
        yield postgres, redis_server
    finally:
        postgres.stop()
        redis_server.stop()


@pytest.fixture
async def stack(servers: tuple[PostgresServer, RedisServer], tmp_path: Path) -> AsyncIterator[Services]:
    postgres, redis_server = servers
    settings = make_settings(
        tmp_path,
        database_url=await create_database(postgres.admin_url),
        redis_url=redis_server.url,
        rate_limit_per_minute=100_000,
        tool_timeout_s=TIMEOUT_S,
        db_connect_retries=2,
        db_pool_timeout_s=2,
        redis_probe_interval_s=0.5,
        spool_replay_interval_s=0.3,
    )
    services = await Services.start(settings)
    try:
        yield services
    finally:
        await services.close()


async def _audit_count(services: Services) -> int:
    await services.audit.flush()  # read-only calls' rows are batched off the reply path
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one())


@pytest.mark.parametrize("outage", ["postgresql_stopped", "postgresql_shutting_down"])
async def test_postgresql_outage(stack: Services, servers: tuple[PostgresServer, RedisServer], outage: str) -> None:
    postgres = servers[0]
    async with Client(build_server(stack)) as client:
        calls = await _healthy_calls(client)
        healthy = {tool: _outcome(r) for tool, r in (await _call_all(client, calls)).items()}
        audited_before = await _audit_count(stack)
        holder = None
        if outage == "postgresql_stopped":
            postgres.halt()
        else:
            holder = await asyncpg.connect(postgres.admin_url)  # keeps the server in "shutting down" (57P03)
            await stack.db.engine.dispose()
            postgres.begin_smart_shutdown()
        try:
            during = await _call_all(client, calls)
        finally:
            if holder is not None:
                await holder.close()
                postgres.wait_stopped()
            postgres.resume()
        await eventually(lambda: stack.spool.count() == 0, timeout_s=20)
        audited_after = await _audit_count(stack)
    outcomes = {tool: _outcome(r) for tool, r in during.items()}
    print(outage, outcomes)
    for tool, result in during.items():
        if result.is_error:
            error = error_of(result)
            documented_business_answer = healthy[tool] == error["code"]  # e.g. cancel_order on a filled order
            assert documented_business_answer or (error["code"] in RETRYABLE and error["retryable"]), (tool, error)
            if error["retryable"]:
                assert error["retry_after_s"] > 0, (tool, error)
    for tool in NEEDS_STORAGE:
        assert outcomes[tool] in RETRYABLE, (tool, outcomes[tool])
    assert outcomes["get_audit_log"] == "DATABASE_ERROR" and outcomes["get_backtest"] == "DATABASE_ERROR"
    assert outcomes["ping"] == "ok" and outcomes["list_strategies"] == "ok"
    assert stack.spool.count() == 0
    assert audited_after - audited_before == len(calls)  # every call of the outage is in the audit log


@pytest.mark.parametrize("outage", ["redis_frozen", "redis_stopped"])
async def test_redis_outage(stack: Services, servers: tuple[PostgresServer, RedisServer], outage: str) -> None:
    redis_server = servers[1]
    async with Client(build_server(stack)) as client:
        calls = await _healthy_calls(client)
        healthy = {tool: _outcome(r) for tool, r in (await _call_all(client, calls)).items()}
        if outage == "redis_frozen":
            redis_server.freeze()
        else:
            redis_server.process.terminate()
            redis_server.process.wait(timeout=10)
        try:
            during = {tool: _outcome(r) for tool, r in (await _call_all(client, calls)).items()}
            status = await client.call_tool("server_status", {})
        finally:
            if outage == "redis_frozen":
                redis_server.thaw()
            else:
                servers_redis = RedisServer.start(port=redis_server.port)
                redis_server.process = servers_redis.process
    print(outage, during)
    assert during == healthy  # nothing an agent sees changes but server_status
    assert status.structured_content["status"] == "degraded"
    assert any("Redis" in reason for reason in status.structured_content["degraded_reasons"])
