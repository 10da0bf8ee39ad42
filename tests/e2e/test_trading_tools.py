"""Every trading tool through the real MCP client over stdio (zero configuration: the paper broker
priced by the synthetic source), and the error paths through an in-memory client."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from mcp import Client, StdioServerParameters

from nt_mcp.infra.schema import orders
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.cli import server_env
from tests.fakes import SetPrices, use_paper_prices
from tests.results import error_of

TRADING_TOOLS = {
    "get_account",
    "get_positions",
    "get_orders",
    "get_order",
    "get_quote",
    "place_order",
    "cancel_order",
    "close_position",
    "get_bars",
    "execute_strategy",
}


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    body = dict(result.structured_content)
    assert body["mode"] == "paper" and body["broker"] == "paper"
    return body


async def test_every_trading_tool_over_stdio(tmp_path: Path) -> None:
    env = server_env(tmp_path / "d")
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) >= TRADING_TOOLS
        for name in ("place_order", "cancel_order", "close_position"):
            assert listed[name].annotations.destructive_hint is True  # type: ignore[union-attr]
        quote = _ok(await client.call_tool("get_quote", {"symbol": "aapl"}))
        assert quote["symbol"] == "AAPL" and quote["price_source"] == "synthetic" and float(quote["price"]) > 0
        bars = _ok(await client.call_tool("get_bars", {"symbol": "SPY", "timeframe": "1Day", "limit": 30}))
        assert bars["count"] == 30 and bars["price_source"] == "synthetic"
        assert all(b["l"] <= min(b["o"], b["c"]) and b["h"] >= max(b["o"], b["c"]) for b in bars["bars"])
        assert [b["t"] for b in bars["bars"]] == sorted(b["t"] for b in bars["bars"])
        # a plain date and a naive time are UTC (a plain date used to fail with INTERNAL)
        dated = _ok(await client.call_tool("get_bars", {"symbol": "AAPL", "start": "2024-01-01", "end": "2024-02-01"}))
        assert dated["count"] == 24 and dated["bars"][0]["t"].startswith("2024-01-01")  # weekdays, both ends
        naive = _ok(await client.call_tool("get_bars", {"symbol": "AAPL", "start": "2024-01-01T00:00"}))
        assert naive["count"] == 100
        too_old = await client.call_tool("get_bars", {"symbol": "AAPL", "end": "0001-06-01"})
        assert error_of(too_old)["context"]["argument"] == "end" and "1970-01-01" in error_of(too_old)["message"]
        bad = await client.call_tool("get_bars", {"symbol": "SPY", "timeframe": "1Week"})
        assert bad.is_error and error_of(bad)["context"]["argument"] == "timeframe"
        account = _ok(await client.call_tool("get_account", {}))
        assert account["cash"] == "100000" and account["price_source"] == "synthetic"
        bought = _ok(await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 3}))
        order = bought["order"]
        assert order["status"] == "filled" and order["id"] and order["client_order_id"].startswith("nt-")
        assert bought["idempotency_key"] and bought["risk_checks"] and bought["price_source"] == "synthetic"
        replay = _ok(
            await client.call_tool(
                "place_order", {"symbol": "AAPL", "side": "buy", "qty": 3, "idempotency_key": bought["idempotency_key"]}
            )
        )
        assert replay["replayed"] is True and replay["order"]["id"] == order["id"]
        positions = _ok(await client.call_tool("get_positions", {}))
        assert [(p["symbol"], p["qty"]) for p in positions["positions"]] == [("AAPL", "3")]
        resting = _ok(
            await client.call_tool(
                "place_order",
                {"symbol": "MSFT", "side": "buy", "qty": 1, "type": "limit", "limit_price": 1, "time_in_force": "gtc"},
            )
        )["order"]
        assert resting["status"] == "new"
        listed_orders = _ok(await client.call_tool("get_orders", {"status": "open"}))
        assert [o["id"] for o in listed_orders["orders"]] == [resting["id"]]
        by_client = _ok(await client.call_tool("get_order", {"client_order_id": resting["client_order_id"]}))
        assert by_client["order"]["id"] == resting["id"]
        canceled = _ok(await client.call_tool("cancel_order", {"order_id": resting["id"]}))
        assert canceled["order"]["status"] == "canceled"
        for labelled in (listed_orders, by_client, canceled):  # every trading result says where prices come from
            assert labelled["price_source"] == "synthetic"
        closed = _ok(await client.call_tool("close_position", {"symbol": "AAPL", "percentage": 100}))
        assert closed["order"]["side"] == "sell" and closed["order"]["filled_qty"] == "3"
        assert _ok(await client.call_tool("get_positions", {}))["positions"] == []
        assert _ok(await client.call_tool("get_order", {"order_id": order["id"]}))["order"]["status"] == "filled"
        run_args = {
            "strategy": "momentum",
            "symbols": ["SPY"],
            "params": {"lookback": 20},
            "capital_fraction": 0.2,
            "dry_run": False,
            "idempotency_key": "e2e-run",
        }
        run = _ok(await client.call_tool("execute_strategy", run_args))
        signal = run["signals"]["SPY"]
        assert run["status"] == "executed" and signal["source"] == "synthetic"
        held = _ok(await client.call_tool("get_positions", {}))["positions"]
        expected = [("SPY", signal["target_qty"])] if signal["direction"] > 0 else []  # long-only momentum
        assert [(p["symbol"], p["qty"]) for p in held] == expected
        again = _ok(await client.call_tool("execute_strategy", run_args))
        assert again["replayed"] is True and again["run_id"] == run["run_id"]


def _client(services: Services, scopes: set[str]) -> Client:
    return Client(NtMCPServer(Guard(services, Principal("tester", frozenset(scopes))), all_tools()))


async def _order_rows(services: Services) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(orders))).scalar_one())


async def test_bad_qty_names_the_argument_and_changes_nothing(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    async with _client(services, {"read", "trade"}) as client:
        for args, argument in [
            ({"symbol": "AAPL", "side": "buy", "qty": 0}, "qty"),
            ({"symbol": "AAPL", "side": "buy", "qty": -5}, "qty"),
            ({"symbol": "AAPL", "side": "buy", "qty": "NaN"}, "qty"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit"}, "limit_price"),
            ({"symbol": "AAPL", "side": "buy"}, "qty"),
            ({"symbol": "AA PL", "side": "buy", "qty": 1}, "symbol"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1e-30}, "qty"),  # finer than the broker's 1e-9
            ({"symbol": "AAPL", "side": "buy", "qty": "0.0000000001"}, "qty"),
            ({"symbol": "AAPL", "side": "buy", "qty": "1E+999999"}, "qty"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1e308}, "qty"),
            ({"symbol": "AAPL", "side": "buy", "notional": "1E+999999"}, "notional"),
            ({"symbol": "AAPL", "side": "buy", "notional": "10.001"}, "notional"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit", "limit_price": "1E+999999"}, "limit_price"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "limit", "limit_price": "100.00001"}, "limit_price"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1, "type": "stop", "stop_price": "-1"}, "stop_price"),
            ({"symbol": "AAPL", "side": "buy", "qty": 1, "idempotency_key": "a\u0000b"}, "idempotency_key"),
            ({"symbol": "AAPL\u0000", "side": "buy", "qty": 1}, "symbol"),
        ]:
            result = await client.call_tool("place_order", args)
            assert result.is_error, args
            error = error_of(result)
            assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == argument, (args, error)
            assert len(error["message"]) < 300, error["message"]  # short whatever the input
        for tool, args in [
            ("close_position", {"symbol": "AAPL", "qty": "1E+999999"}),
            ("close_position", {"symbol": "AAPL", "percentage": "100.5"}),
            ("execute_strategy", {"strategy": "momentum", "symbols": ["SPY"], "capital_fraction": "1E+999999"}),
            ("execute_strategy", {"strategy": "momentum", "symbols": ["SPY"], "capital_fraction": "0.00001"}),
            ("get_order", {"order_id": "x\u0000"}),
            ("cancel_order", {"order_id": "x\u0000"}),
        ]:
            error = error_of(await client.call_tool(tool, args))
            assert error["code"] == "VALIDATION_ERROR" and len(error["message"]) < 300, (tool, args, error)
        account = (await client.call_tool("get_account", {})).structured_content
    assert await _order_rows(services) == 0
    assert account["cash"] == "100000"
    assert prices.requests <= 1  # only get_account's sweep could have asked; no order priced


async def test_read_only_scope_cannot_place_orders(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"))
    async with _client(services, {"read"}) as client:
        result = await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 1})
        assert result.is_error and error_of(result)["code"] == "FORBIDDEN"
        assert not (await client.call_tool("get_account", {})).is_error
    assert await _order_rows(services) == 0


async def test_a_risk_refusal_has_its_own_code(services: Services) -> None:
    services.settings = services.settings.model_copy(update={"risk_max_order_notional": 50})
    from nt_mcp.adapters.brokers.factory import build_risk_limits

    use_paper_prices(services, SetPrices(AAPL="100"), limits=build_risk_limits(services.settings))
    async with _client(services, {"read", "trade"}) as client:
        result = await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 1})
    error = error_of(result)
    assert error["code"] == "RISK_MAX_NOTIONAL" and "50" in error["message"]
    assert await _order_rows(services) == 0
