"""Resources (stored backtests with their equity PNG, strategy docs), completions, workflow prompts and
MCP logging, through the real `mcp` client on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    TextResourceContents,
)
from PIL import Image

from nt_mcp.domain.strategies import STRATEGIES
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.server.resources import RESOURCE_NOT_FOUND
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.integration.test_backtesting_tools import stack  # noqa: F401 - the fixture

BACKTEST_ARGS = {"strategy": "sma_crossover", "symbol": "GOOG", "data_source": "files"}


def _client(services: Services, subject: str = "alice", scopes: str = "read backtest", **kwargs: Any) -> Client:
    principal = Principal(subject, frozenset(scopes.split()))
    return Client(NtMCPServer(Guard(services, principal), all_tools()), **kwargs)


async def _backtest(services: Services, subject: str = "alice") -> tuple[str, bytes]:
    async with _client(services, subject) as client:
        result = await client.call_tool("run_backtest", BACKTEST_ARGS)
    assert not result.is_error, result.content
    image = next(block for block in result.content if isinstance(block, ImageContent))
    return result.structured_content["backtest_id"], base64.b64decode(image.data)


async def test_a_stored_backtest_is_a_resource_with_every_trade_and_its_chart(stack: Services) -> None:  # noqa: F811
    backtest_id, png = await _backtest(stack)
    async with _client(stack) as client:
        listed = {r.uri: r for r in (await client.list_resources()).resources}
        read = await client.read_resource(f"backtest://{backtest_id}")
        chart = await client.read_resource(f"backtest://{backtest_id}/equity.png")
        tool = await client.call_tool("get_backtest", {"backtest_id": backtest_id, "trades_limit": 1000})
    entry = listed[f"backtest://{backtest_id}"]
    assert entry.title.startswith("sma_crossover GOOG") and entry.mime_type == "application/json"
    assert "trades" in (entry.description or "")
    document, image = read.contents
    assert isinstance(document, TextResourceContents) and document.mime_type == "application/json"
    body = json.loads(document.text)
    assert body["trades"] == tool.structured_content["trades"] and body["trade_count"] == len(body["trades"]) > 20
    assert body["next_trades_offset"] is None and body["metrics"] == tool.structured_content["metrics"]
    assert body["equity_chart"] == f"backtest://{backtest_id}/equity.png"
    assert isinstance(image, BlobResourceContents) and image.mime_type == "image/png"
    assert str(image.uri) == f"backtest://{backtest_id}/equity.png"
    assert base64.b64decode(image.blob) == png  # the very chart run_backtest returned
    assert Image.open(io.BytesIO(png)).size == (800, 350)
    assert [c.model_dump() for c in chart.contents] == [image.model_dump()]


async def test_another_principals_backtest_is_not_found(stack: Services) -> None:  # noqa: F811
    backtest_id, _ = await _backtest(stack, subject="alice")
    async with _client(stack, subject="mallory") as client:
        listed = [r.uri for r in (await client.list_resources()).resources]
        for uri in (f"backtest://{backtest_id}", f"backtest://{backtest_id}/equity.png"):
            with pytest.raises(MCPError) as error:
                await client.read_resource(uri)
            assert error.value.error.code == RESOURCE_NOT_FOUND
    assert f"backtest://{backtest_id}" not in listed


async def test_strategy_documents_and_templates(stack: Services) -> None:  # noqa: F811
    async with _client(stack) as client:
        listed = [r.uri for r in (await client.list_resources()).resources]
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        doc = await client.read_resource("strategy://sma_crossover")
        with pytest.raises(MCPError) as error:
            await client.read_resource("strategy://no_such_strategy")
    assert [uri for uri in listed if uri.startswith("strategy://")] == [f"strategy://{name}" for name in STRATEGIES]
    assert "strategy://sma_crossover" in listed
    assert templates == ["backtest://{backtest_id}", "backtest://{backtest_id}/equity.png", "strategy://{name}"]
    text = doc.contents[0]
    assert isinstance(text, TextResourceContents) and text.mime_type == "text/markdown"
    assert text.text.startswith("# sma_crossover") and "| `fast` | int | 10 | 1 | 10000 |" in text.text
    assert "next bar's open" in text.text or "NEXT bar's open" in text.text
    assert error.value.error.code == RESOURCE_NOT_FOUND


async def test_without_the_read_scope_there_are_no_resources(stack: Services) -> None:  # noqa: F811
    async with _client(stack, scopes="trade") as client:
        assert (await client.list_resources()).resources == []
        assert (await client.list_resource_templates()).resource_templates == []
        with pytest.raises(MCPError):
            await client.read_resource("strategy://sma_crossover")


async def test_completion_suggests_strategies_symbols_and_your_backtest_ids(stack: Services) -> None:  # noqa: F811
    backtest_id, _ = await _backtest(stack)
    prompt = PromptReference(type="ref/prompt", name="compare_strategies")
    async with _client(stack) as client:
        strategies = await client.complete(prompt, {"name": "strategies", "value": "sma_crossover,m"})
        symbols = await client.complete(prompt, {"name": "symbol", "value": "go"})
        ids = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="backtest://{backtest_id}"),
            {"name": "backtest_id", "value": backtest_id[:4]},
        )
        names = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="strategy://{name}"), {"name": "name", "value": "R"}
        )
        nope = PromptReference(type="ref/prompt", name="nope")
        unknown = await client.complete(nope, {"name": "symbol", "value": ""})
    async with _client(stack, subject="mallory") as client:
        others = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="backtest://{backtest_id}"),
            {"name": "backtest_id", "value": ""},
        )
    assert strategies.completion.values == ["sma_crossover,mean_reversion", "sma_crossover,momentum"]
    assert symbols.completion.values == ["GOOG"]  # NT_DATA_DIR/GOOG.csv and the backtest
    assert ids.completion.values == [backtest_id] and ids.completion.total == 1
    assert names.completion.values == ["rsi_reversion"]
    assert unknown.completion.values == [] and others.completion.values == []


async def test_prompts_are_workflows_over_tools_the_caller_may_use(stack: Services) -> None:  # noqa: F811
    backtest_id, _ = await _backtest(stack)
    async with _client(stack) as client:
        listed = {p.name: p for p in (await client.list_prompts()).prompts}
        compare = await client.get_prompt("compare_strategies", {"symbol": "SPY", "timeframe": "1Hour"})
        review = await client.get_prompt("review_backtest", {"backtest_id": backtest_id})
        with pytest.raises(MCPError) as bad_strategy:
            await client.get_prompt("optimize_and_validate", {"strategy": "nope", "symbol": "SPY"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("optimize_and_validate", {"strategy": "momentum"})
        with pytest.raises(MCPError) as forbidden:
            await client.get_prompt("paper_trade_strategy", {"strategy": "momentum", "symbols": "SPY"})
    assert set(listed) == {"compare_strategies", "optimize_and_validate", "review_backtest"}  # no trade scope
    assert [a.name for a in listed["compare_strategies"].arguments or []][:2] == ["symbol", "strategies"]
    text = compare.messages[-1].content
    assert isinstance(text, TextContent) and 'symbol="SPY"' in text.text and 'timeframe="1Hour"' in text.text
    assert "run_backtest" in text.text and "synthetic" in text.text
    embedded = [m.content for m in review.messages if isinstance(m.content, EmbeddedResource)]
    assert [str(e.resource.uri) for e in embedded] == [
        f"backtest://{backtest_id}",
        f"backtest://{backtest_id}/equity.png",
    ]
    assert bad_strategy.value.error.code == INVALID_PARAMS and "strategy" in bad_strategy.value.error.message
    assert missing.value.error.code == INVALID_PARAMS and "symbol is required" in missing.value.error.message
    assert forbidden.value.error.code == INVALID_PARAMS  # listed for nobody without the trade scope


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")  # the client side of logging/setLevel
async def test_long_tools_send_log_notifications_at_the_level_the_client_set(stack: Services) -> None:  # noqa: F811
    received: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with _client(stack, logging_callback=on_log, mode="legacy") as client:  # logging/setLevel is handshake-era
        await client.set_logging_level("warning")
        quiet = await client.call_tool("run_backtest", BACKTEST_ARGS)
        assert not quiet.is_error and received == []
        await client.set_logging_level("info")
        await client.call_tool("run_backtest", BACKTEST_ARGS)
        await client.call_tool(
            "optimize_strategy",
            {**BACKTEST_ARGS, "param_grid": {"fast": [5, 10], "slow": [30, 50]}},
        )
    messages = [str(p.data) for p in received]
    assert all(p.level == "info" and p.logger == "nt-mcp" for p in received)
    assert any(m.startswith("run_backtest:") and "bars of GOOG from files" in m for m in messages)
    assert any("stored as backtest://" in m for m in messages)
    assert any(m.startswith("optimize_strategy: 4 parameter sets") for m in messages)
