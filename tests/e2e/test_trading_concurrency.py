"""Concurrency through the real MCP client against `nt-mcp serve` subprocesses over stdio: 20 concurrent
place_order calls with one idempotency key place one order; 20 concurrent resting buys never reserve
more than the cash; and two server processes on one PostgreSQL database share both guarantees.
The counts are printed (stderr) as well as asserted."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tests.cli import server_env
from tests.results import error_of


def _server(tmp_path: Path, name: str, **settings: str) -> StdioServerParameters:
    env = server_env(tmp_path / name, **settings)
    return StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))


def _body(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def _resting_buys(clients: list[Client], per_client: int, prefix: str) -> tuple[int, dict[str, int], Decimal]:
    """``per_client`` concurrent resting limit buys from each client, sized so that exactly 16 fit in
    the account's cash: (accepted, refusals by code, value of one order)."""
    cash = Decimal(_body(await clients[0].call_tool("get_account", {}))["buying_power"])
    qty = int(cash / Decimal("16.5"))  # at limit 1: 16 orders fit, 17 do not
    calls = [
        client.call_tool(
            "place_order",
            {
                "symbol": "MSFT",
                "side": "buy",
                "qty": qty,
                "type": "limit",
                "limit_price": 1,
                "time_in_force": "gtc",
                "idempotency_key": f"{prefix}-{c}-{i}",
            },
        )
        for c, client in enumerate(clients)
        for i in range(per_client)
    ]
    results = await asyncio.gather(*calls)
    refused: dict[str, int] = {}
    for result in results:
        if result.is_error:
            code = error_of(result)["code"]
            refused[code] = refused.get(code, 0) + 1
    return sum(1 for r in results if not r.is_error), refused, Decimal(qty)


async def test_twenty_concurrent_same_key_orders_and_reservations_over_stdio(tmp_path: Path) -> None:
    async with Client(_server(tmp_path, "d"), read_timeout_seconds=120) as client:
        order = {"symbol": "AAPL", "side": "buy", "qty": 2, "idempotency_key": "twenty-at-once"}
        results = await asyncio.gather(*(client.call_tool("place_order", order) for _ in range(20)))
        bodies = [_body(r) for r in results]
        all_orders = _body(await client.call_tool("get_orders", {"status": "all"}))
        accepted, refused, value = await _resting_buys([client], 20, "reserve")
        account = _body(await client.call_tool("get_account", {}))
        open_orders = _body(await client.call_tool("get_orders", {"status": "open", "limit": 100}))
    replayed = sum(1 for b in bodies if b["replayed"])
    reserved = sum(Decimal(o["qty"]) * Decimal(o["limit_price"]) for o in open_orders["orders"])
    sys.stderr.write(
        f"\nstdio, 20 concurrent place_order with one key: {all_orders['count']} order, {20 - replayed} "
        f"replayed=false, {replayed} replayed=true\n20 concurrent resting buys of {value}: {accepted} accepted, "
        f"refused {refused}; reserved {reserved} of cash {account['cash']}, buying power {account['buying_power']}\n"
    )
    assert all_orders["count"] == 1 and replayed == 19
    assert {b["order"]["id"] for b in bodies} == {all_orders["orders"][0]["id"]}
    assert accepted == 16 and refused == {"INSUFFICIENT_BUYING_POWER": 4}
    assert reserved == 16 * value <= Decimal(account["cash"])
    assert Decimal(account["buying_power"]) == Decimal(account["cash"]) - reserved


async def test_two_server_processes_on_one_postgres_share_the_guarantees(tmp_path: Path, pg_url: str) -> None:
    first_params = _server(tmp_path, "one", NT_DATABASE_URL=pg_url)
    second_params = _server(tmp_path, "two", NT_DATABASE_URL=pg_url)
    async with (
        Client(first_params, read_timeout_seconds=120) as first,
        Client(second_params, read_timeout_seconds=120) as second,
    ):
        order = {"symbol": "AAPL", "side": "buy", "qty": 3, "idempotency_key": "from-both-processes"}
        same_key = await asyncio.gather(*(c.call_tool("place_order", order) for c in (first, second) * 5))
        bodies = [_body(r) for r in same_key]
        all_orders = _body(await first.call_tool("get_orders", {"status": "all"}))
        accepted, refused, value = await _resting_buys([first, second], 10, "two-proc")
        account = _body(await second.call_tool("get_account", {}))
        open_orders = _body(await first.call_tool("get_orders", {"status": "open", "limit": 100}))
    reserved = sum(Decimal(o["qty"]) * Decimal(o["limit_price"]) for o in open_orders["orders"])
    sys.stderr.write(
        f"\ntwo processes, one PostgreSQL: 10 same-key calls -> {all_orders['count']} order; 20 resting buys of "
        f"{value}: {accepted} accepted, refused {refused}; reserved {reserved} of cash {account['cash']}\n"
    )
    assert all_orders["count"] == 1 and sorted(b["replayed"] for b in bodies) == [False] + [True] * 9
    assert accepted == 16 and refused == {"INSUFFICIENT_BUYING_POWER": 4}
    assert reserved == 16 * value <= Decimal(account["cash"])
