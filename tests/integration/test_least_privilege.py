"""Least privilege in what a client is shown: tools/list (and prompts, resources) per scope over HTTP and
stdio, NT_TOOLSETS, and hidden tools that still answer FORBIDDEN. Through the real `mcp` client."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from nt_mcp.server.app import build_server, lean_schema
from nt_mcp.server.registry import TOOLSETS, UnknownToolsetError, all_tools, toolset_names
from nt_mcp.tools.services import Services
from tests.cli import run_cli, server_env
from tests.conftest import make_settings
from tests.http_support import Running, http_settings, make_token, mcp_transport, serve_in_thread
from tests.results import error_of

TRADING_TOOLS = {"place_order", "cancel_order", "close_position", "execute_strategy"}
EVERY_TOOL = {spec.name for spec in all_tools()}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serve_in_thread(http_settings(tmp_path_factory.mktemp("least"))) as server:
        yield server


async def _listing(running: Running, scope: str) -> tuple[set[str], set[str]]:
    token = make_token(running.settings, sub="reader", scope=scope)
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    return tools, prompts


async def test_a_read_token_lists_no_trading_tool(running: Running) -> None:
    tools, prompts = await _listing(running, "read")
    assert tools.isdisjoint(TRADING_TOOLS) and "run_backtest" not in tools and "optimize_strategy" not in tools
    assert {"server_status", "get_quote", "get_account", "get_backtest", "list_strategies"} <= tools
    assert prompts == {"review_backtest"}  # the only workflow a read token can follow


async def test_each_scope_sees_exactly_its_tools(running: Running) -> None:
    backtest, _ = await _listing(running, "read backtest")
    assert {"run_backtest", "optimize_strategy"} <= backtest and backtest.isdisjoint(TRADING_TOOLS)
    everything, prompts = await _listing(running, "read backtest trade")
    assert everything == EVERY_TOOL
    assert "paper_trade_strategy" in prompts and "compare_strategies" in prompts
    trade_only, _ = await _listing(running, "trade")
    assert trade_only == {spec.name for spec in all_tools() if spec.scope == "trade"} and trade_only >= TRADING_TOOLS


async def test_a_hidden_tool_still_answers_forbidden_whatever_its_arguments(running: Running) -> None:
    token = make_token(running.settings, sub="reader", scope="read")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        valid = await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 1})
        invalid = await client.call_tool("place_order", {"symbol": 42, "bogus": True})
        backtest = await client.call_tool("run_backtest", {"strategy": "sma_crossover", "symbol": "SPY"})
        orders = await client.call_tool("get_orders", {"status": "all"})
    for result in (valid, invalid, backtest):
        assert error_of(result)["code"] == "FORBIDDEN"
    assert error_of(valid)["context"] == {"required_scope": "trade"}
    assert orders.structured_content["orders"] == []  # nothing was placed


async def test_stdio_scopes_filter_the_list_of_a_subprocess(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", NT_STDIO_SCOPES="read")
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        hidden = await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 1})
    assert tools.isdisjoint(TRADING_TOOLS) and "run_backtest" not in tools and "get_positions" in tools
    assert error_of(hidden)["code"] == "FORBIDDEN"


async def test_toolsets_expose_only_the_named_ones(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, toolsets="status, market,backtest")
    services = await Services.start(settings)
    try:
        async with Client(build_server(services)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            missing = await client.call_tool("get_account", {})
            quote = await client.call_tool("get_quote", {"symbol": "SPY"})
    finally:
        await services.close()
    expected = {spec.name for name in ("status", "market", "backtest") for spec in TOOLSETS[name]}
    assert tools == expected and "get_account" not in tools and {"get_bars", "get_quote", "run_backtest"} <= tools
    assert error_of(missing)["code"] == "NOT_FOUND"  # not served at all
    assert not quote.is_error


def test_toolset_names_are_checked() -> None:
    assert toolset_names("") == list(TOOLSETS)
    assert toolset_names("Backtest,status,backtest") == ["backtest", "status"]
    with pytest.raises(UnknownToolsetError) as error:
        toolset_names("status,nope")
    assert "NT_TOOLSETS" in str(error.value) and "nope" in str(error.value)
    assert f"known: {', '.join(TOOLSETS)}" in str(error.value)


def test_an_unknown_toolset_stops_serve_with_exit_code_2(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", NT_TOOLSETS="status,nope")
    assert result.returncode == 2
    assert "NT_TOOLSETS" in result.stderr and "nope" in result.stderr and "Traceback" not in result.stderr


def test_every_tool_belongs_to_exactly_one_toolset() -> None:
    names = [spec.name for specs in TOOLSETS.values() for spec in specs]
    assert len(names) == len(set(names)) == len(EVERY_TOOL)


async def test_descriptions_are_dedented_and_schemas_lean(running: Running) -> None:
    token = make_token(running.settings, scope="read backtest trade")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.description and "\n    " not in tool.description, tool.name
        assert tool.description == tool.description.strip()
        schemas = json.dumps([tool.input_schema, tool.output_schema])
        assert '"title": "' not in schemas.replace('"title": {', ""), tool.name  # no pydantic title annotations
    for tool in tools:  # keep it lean: the largest today, run_backtest, takes ~10 kB (README)
        entry = json.dumps(tool.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
        assert len(entry) < 12_000, tool.name


def test_lean_schema_keeps_a_property_called_title() -> None:
    schema = {
        "title": "Args",
        "type": "object",
        "properties": {"title": {"title": "Title", "type": "string"}, "n": {"title": "N", "type": "integer"}},
        "$defs": {"Inner": {"title": "Inner", "type": "object", "properties": {"title": {"type": "string"}}}},
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {"title": {"type": "string"}, "n": {"type": "integer"}},
        "$defs": {"Inner": {"type": "object", "properties": {"title": {"type": "string"}}}},
    }
