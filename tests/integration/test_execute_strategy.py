"""execute_strategy on the paper broker priced by the synthetic source, through the real MCP client:
the plan matches the strategy's own signal, a dry run sends nothing, an execution reaches the target
position, a reused idempotency_key never trades twice, and bad input changes nothing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa
from mcp import Client

from nt_mcp.domain.strategies import STRATEGIES
from nt_mcp.infra.schema import orders, strategy_runs
from nt_mcp.server.app import build_server
from nt_mcp.services.strategy_executor import current_direction
from nt_mcp.tools.services import Services
from tests.results import error_of


async def _count(services: Services, table: sa.Table) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


def _body(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


def test_current_direction_is_the_last_decided_signal() -> None:
    assert current_direction(np.array([np.nan, 1.0, np.nan, np.nan])) == 1
    assert current_direction(np.array([1.0, 0.0, np.nan])) == 0
    assert current_direction(np.array([1.0, -1.0])) == -1
    assert current_direction(np.array([np.nan, np.nan])) == 0


async def test_dry_run_plans_from_the_strategy_signal_and_sends_nothing(services: Services) -> None:
    args = {
        "strategy": "sma_crossover",
        "symbols": ["SPY", "QQQ"],
        "params": {"fast": 5, "slow": 20, "allow_short": True},
        "capital_fraction": 0.5,
        "lookback_bars": 120,
    }
    async with Client(build_server(services)) as client:
        run = _body(await client.call_tool("execute_strategy", args))
    assert run["dry_run"] is True and run["status"] == "planned" and run["replayed"] is False
    assert run["params"] == {"fast": 5, "slow": 20, "allow_short": True}
    equity = Decimal("100000")
    for symbol in ("SPY", "QQQ"):
        signal = run["signals"][symbol]
        # the same signal the strategy gives on the same synthetic bars
        now = datetime.fromisoformat(signal["last_bar"].replace("Z", "+00:00")) + timedelta(hours=1)
        bars = await services.market_data.get_bars(symbol, "1Day", now - timedelta(days=400), now)
        expected = current_direction(
            STRATEGIES["sma_crossover"].signals(bars, {"fast": 5, "slow": 20, "allow_short": True})
        )
        assert signal["direction"] == expected
        price = Decimal(signal["last_price"])
        assert Decimal(signal["target_qty"]) == expected * math.floor(equity * Decimal("0.25") / price)
    planned = {o["symbol"]: o for o in run["orders"]}
    for symbol, signal in run["signals"].items():
        if signal["direction"] == 0:
            assert symbol not in planned
        else:
            order = planned[symbol]
            assert order["side"] == ("buy" if signal["direction"] > 0 else "sell")
            assert order["qty"] == str(abs(Decimal(signal["target_qty"])))
            assert order["state"] in ("planned", "refused")
    assert await _count(services, orders) == 0  # a dry run sends nothing
    assert await _count(services, strategy_runs) == 1  # and is recorded


async def test_execution_reaches_the_target_and_a_reused_key_never_trades_twice(services: Services) -> None:
    args = {
        "strategy": "momentum",
        "symbols": ["AAPL", "MSFT", "NVDA"],
        "params": {"lookback": 10},
        "capital_fraction": 0.6,
        "dry_run": False,
        "idempotency_key": "run-1",
    }
    async with Client(build_server(services)) as client:
        run = _body(await client.call_tool("execute_strategy", args))
        positions = _body(await client.call_tool("get_positions", {}))["positions"]
        again = _body(await client.call_tool("execute_strategy", args))
        second_positions = _body(await client.call_tool("get_positions", {}))["positions"]
    held = {p["symbol"]: Decimal(p["qty"]) for p in positions}
    longs = {s: Decimal(v["target_qty"]) for s, v in run["signals"].items() if v["direction"] > 0}
    assert held == longs, [
        (o["state"], o.get("error")) for o in run["orders"]
    ]  # long-only momentum: every long target is held, nothing else
    submitted = [o for o in run["orders"] if o["state"] == "submitted"]
    assert len(submitted) == len(longs) and all(o["status"] == "filled" for o in submitted)
    assert run["status"] == "executed"
    assert again["replayed"] is True and again["run_id"] == run["run_id"] and again["orders"] == run["orders"]
    assert second_positions == positions
    assert await _count(services, orders) == len(longs)  # one order per long target, not two
    assert await _count(services, strategy_runs) == 1


async def test_bad_input_names_the_argument_and_records_nothing(services: Services) -> None:
    cases = [
        ({"strategy": "astrology", "symbols": ["SPY"]}, "strategy"),
        ({"strategy": "sma_crossover", "symbols": ["SPY"], "params": {"fast": 30, "slow": 10}}, "params.slow"),
        ({"strategy": "sma_crossover", "symbols": ["SPY"], "params": {"speed": 3}}, "params.speed"),
        ({"strategy": "sma_crossover", "symbols": ["SPY", "spy"]}, "symbols"),
        ({"strategy": "sma_crossover", "symbols": ["not a ticker"]}, "symbols"),
        ({"strategy": "sma_crossover", "symbols": ["SPY"], "capital_fraction": 1.5}, "capital_fraction"),
        ({"strategy": "sma_crossover", "symbols": []}, "symbols"),
        (
            {"strategy": "sma_crossover", "symbols": ["SPY"], "params": {"slow": 500}, "lookback_bars": 100},
            "lookback_bars",
        ),
    ]
    async with Client(build_server(services)) as client:
        for args, argument in cases:
            result = await client.call_tool("execute_strategy", args | {"dry_run": False})
            assert result.is_error, args
            error = error_of(result)
            assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == argument, error
    assert await _count(services, orders) == 0
    assert await _count(services, strategy_runs) == 0


async def test_a_read_only_principal_cannot_execute(services: Services) -> None:
    from nt_mcp.server.app import NtMCPServer
    from nt_mcp.server.guard import Guard
    from nt_mcp.server.registry import all_tools
    from nt_mcp.tools.registry import Principal

    server = NtMCPServer(Guard(services, Principal("viewer", frozenset({"read"}))), all_tools())
    async with Client(server) as client:
        result = await client.call_tool("execute_strategy", {"strategy": "momentum", "symbols": ["SPY"]})
    assert result.is_error and error_of(result)["code"] == "FORBIDDEN"
    assert datetime.now(UTC)  # the call returned promptly with the refusal
