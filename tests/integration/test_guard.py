"""The guard, driven through the real MCP client: scopes, rate limits, typed errors, INTERNAL without
a traceback, deadlines, argument validation, and the audit row every call leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from mcp import Client
from pydantic import BaseModel, Field

from nt_mcp.errors import ExternalAPIError
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.tools.registry import Principal, ToolContext, tool
from nt_mcp.tools.services import Services
from tests.conftest import make_settings
from tests.results import error_of


class Echo(BaseModel):
    value: int


@tool(output=Echo, scope="trade", title="Needs trade", destructive=True)
async def needs_trade(ctx: ToolContext, value: Annotated[int, Field(ge=0, le=10)]) -> Echo:
    """Return value."""
    return Echo(value=value)


@tool(output=Echo, scope="read", title="Costly", cost=2)
async def costly(ctx: ToolContext) -> Echo:
    """Costs two units a call."""
    return Echo(value=2)


@tool(output=Echo, scope="read", title="Upstream fails")
async def upstream_fails(ctx: ToolContext) -> Echo:
    """Raise a typed upstream error."""
    raise ExternalAPIError("Alpaca answered 503", service="alpaca", status=503, retry_after_s=2.0)


@tool(output=Echo, scope="read", title="Crashes")
async def crashes(ctx: ToolContext) -> Echo:
    """Raise an unexpected exception carrying a secret."""
    raise RuntimeError("connection string postgresql://nt:hunter2@db/nt exploded")


@tool(output=Echo, scope="read", title="Hangs")
async def hangs(ctx: ToolContext) -> Echo:
    """Never finishes on its own."""
    await asyncio.sleep(3600)
    return Echo(value=0)


SPECS = [needs_trade, costly, upstream_fails, crashes, hangs]


@pytest.fixture(params=["memory", "redis"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = make_settings(tmp_path, redis_url=redis_url, rate_limit_per_minute=4, tool_timeout_s=0.5)
    services = await Services.start(settings)
    try:
        yield services
    finally:
        await services.close()


def _client(services: Services, scopes: set[str]) -> Client:
    guard = Guard(services, Principal("tester", frozenset(scopes)))
    return Client(NtMCPServer(guard, SPECS))


def _error(result: Any) -> dict[str, Any]:
    assert result.is_error
    return error_of(result)


async def test_scope_denied_runs_nothing(stack: Services) -> None:
    async with _client(stack, {"read"}) as client:
        error = _error(await client.call_tool("needs_trade", {"value": 3}))
    assert error["code"] == "FORBIDDEN"
    assert "trade" in error["message"] and error["retryable"] is False
    rows = await stack.audit.recent("tester", 5)
    assert [(r.tool, r.outcome) for r in rows] == [("needs_trade", "FORBIDDEN")]


async def test_scope_granted_returns_structured_output(stack: Services) -> None:
    async with _client(stack, {"read", "trade"}) as client:
        result = await client.call_tool("needs_trade", {"value": 3})
    assert not result.is_error
    assert result.structured_content == {"value": 3}


async def test_rate_limit_is_cost_weighted_and_says_when_to_retry(stack: Services) -> None:
    async with _client(stack, {"read"}) as client:
        first = await client.call_tool("costly", {})
        second = await client.call_tool("costly", {})
        third = await client.call_tool("costly", {})
    assert not first.is_error and not second.is_error  # 2 + 2 units of a 4-unit budget
    error = _error(third)
    assert error["code"] == "RATE_LIMITED" and error["retryable"] is True
    assert 0 < error["retry_after_s"] <= 60


async def test_typed_upstream_error_keeps_code_service_and_retry_hint(stack: Services) -> None:
    async with _client(stack, {"read"}) as client:
        error = _error(await client.call_tool("upstream_fails", {}))
    assert error == {
        "code": "EXTERNAL_API_ERROR",
        "message": "Alpaca answered 503",
        "retryable": True,
        "category": "external_api",
        "retry_after_s": 2.0,
        "context": {"service": "alpaca", "status": 503},
    }


async def test_unexpected_exception_becomes_internal_without_traceback_or_secret(
    stack: Services, caplog: pytest.LogCaptureFixture
) -> None:
    async with _client(stack, {"read"}) as client:
        result = await client.call_tool("crashes", {})
    error = _error(result)
    assert error["code"] == "INTERNAL"
    correlation_id = error["context"]["correlation_id"]
    text = result.content[0].text
    for leaked in ("Traceback", "RuntimeError", "hunter2", "exploded"):
        assert leaked not in text
    assert any(getattr(r, "correlation_id", None) == correlation_id and r.exc_info for r in caplog.records)


async def test_a_hanging_handler_is_stopped_at_the_deadline(stack: Services) -> None:
    async with _client(stack, {"read"}) as client:
        started = asyncio.get_running_loop().time()
        error = _error(await client.call_tool("hangs", {}))
        elapsed = asyncio.get_running_loop().time() - started
    assert error["code"] == "TIMEOUT" and error["retryable"] is True
    assert elapsed < 5


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"value": 11}, "value"),
        ({"value": "lots"}, "value"),
        ({}, "value"),
        ({"value": 1, "vlaue": 2}, "vlaue"),
    ],
)
async def test_bad_arguments_name_the_argument_and_run_nothing(
    stack: Services, arguments: dict[str, Any], argument: str
) -> None:
    async with _client(stack, {"read", "trade"}) as client:
        error = _error(await client.call_tool("needs_trade", arguments))
    assert error["code"] == "VALIDATION_ERROR"
    assert error["context"]["argument"] == argument
    assert argument in error["message"]
    rows = await stack.audit.recent("tester", 5)
    assert rows[0].outcome == "VALIDATION_ERROR"
