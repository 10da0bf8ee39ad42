"""execute_strategy on the paper broker priced by the synthetic source, through the real MCP client:
the plan matches the strategy's own signal, a dry run sends nothing, an execution reaches the target
position, a reused idempotency_key never trades twice, and bad input changes nothing."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
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


async def _direction(services: Services, strategy: str, symbol: str, params: dict[str, Any]) -> int:
    now = datetime.now(UTC)
    bars = await services.market_data.get_bars(symbol, "1Day", now - timedelta(days=400), now)
    return current_direction(STRATEGIES[strategy].signals(bars, params))


async def test_a_first_call_with_the_defaults_plans_orders_that_pass_every_check(services: Services) -> None:
    args = {"strategy": "momentum", "symbols": ["SPY"], "params": {"allow_short": True}}  # every other default
    async with Client(build_server(services)) as client:
        run = _body(await client.call_tool("execute_strategy", args))
    (order,) = run["orders"]  # momentum with shorts allowed is always long or short
    assert order["state"] == "planned" and run["status"] == "planned", order
    checks = {c["code"]: c["passed"] for c in order["risk_checks"]}
    assert {"RISK_MAX_NOTIONAL", "RISK_MAX_POSITION_WEIGHT", "RISK_DAILY_LOSS_HALT"} <= set(checks)
    assert all(checks.values())


async def test_refused_orders_name_their_check_and_the_run_says_so(services: Services) -> None:
    services.orders.limits = replace(services.orders.limits, denylist=frozenset({"QQQ"}))
    params = {"allow_short": True}
    async with Client(build_server(services)) as client:
        too_big = _body(
            await client.call_tool(
                "execute_strategy",
                {"strategy": "momentum", "symbols": ["SPY"], "params": params, "capital_fraction": 0.9},
            )
        )
        mixed = _body(
            await client.call_tool(
                "execute_strategy",
                {"strategy": "momentum", "symbols": ["SPY", "QQQ"], "params": params, "dry_run": False},
            )
        )
    (order,) = too_big["orders"]
    assert too_big["status"] == "refused" and order["state"] == "refused"
    assert order["error"]["code"] == "RISK_MAX_NOTIONAL"
    assert {"code": "RISK_MAX_NOTIONAL", "passed": False} in [
        {"code": c["code"], "passed": c["passed"]} for c in order["risk_checks"]
    ]
    states = {o["symbol"]: o["state"] for o in mixed["orders"]}
    assert states == {"SPY": "submitted", "QQQ": "refused"} and mixed["status"] == "partial"
    assert await _count(services, orders) == 1


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"dry_run": False}, "dry_run"),
        ({"symbols": ["SPY", "QQQ"]}, "symbols"),
        ({"params": {"lookback": 30}}, "params"),
        ({"capital_fraction": 0.1}, "capital_fraction"),
        ({"strategy": "sma_crossover", "params": None}, "strategy"),
    ],
)
async def test_a_key_reused_with_other_arguments_is_refused(
    services: Services, changed: dict[str, Any], field: str
) -> None:
    args = {"strategy": "momentum", "symbols": ["SPY"], "params": {"lookback": 20}, "idempotency_key": "k"}
    async with Client(build_server(services)) as client:
        planned = _body(await client.call_tool("execute_strategy", args))
        reused = await client.call_tool("execute_strategy", args | changed)
        replay = _body(await client.call_tool("execute_strategy", args | {"symbols": ["spy"]}))
    error = error_of(reused)
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED" and error["retryable"] is False
    assert error["context"]["field"] == field
    assert replay["replayed"] is True and replay["run_id"] == planned["run_id"]
    assert await _count(services, orders) == 0  # a dry run's key never trades
    assert await _count(services, strategy_runs) == 1


async def test_concurrent_runs_with_one_key_trade_once(services: Services) -> None:
    args = {
        "strategy": "momentum",
        "symbols": ["SPY", "QQQ", "IWM"],
        "params": {"allow_short": True},
        "capital_fraction": 0.3,
        "dry_run": False,
        "idempotency_key": "together",
    }
    async with Client(build_server(services)) as client:
        results = await asyncio.gather(*(client.call_tool("execute_strategy", args) for _ in range(6)))
    runs = [_body(r) for r in results]
    assert sorted(r["replayed"] for r in runs) == [False] + [True] * 5
    assert len({r["run_id"] for r in runs}) == 1 and all(r["status"] == "executed" for r in runs)
    assert await _count(services, orders) == 3 and await _count(services, strategy_runs) == 1


@pytest.mark.parametrize(
    ("strategy", "params"), [("momentum", {"lookback": 20, "allow_short": True}), ("mean_reversion", {"window": 10})]
)
async def test_short_legs_are_carried_out_on_the_paper_broker(
    services: Services, strategy: str, params: dict[str, Any]
) -> None:
    candidates = [f"S{i:02d}" for i in range(40)]  # synthetic symbols: find one the strategy holds short now
    directions = {s: await _direction(services, strategy, s, params) for s in candidates}
    short = next(s for s, d in directions.items() if d == -1)
    others = [s for s, d in directions.items() if d == 1][:1]
    args = {"strategy": strategy, "symbols": [short, *others], "params": params, "dry_run": False}
    async with Client(build_server(services)) as client:
        run = _body(await client.call_tool("execute_strategy", args))
        held = {p["symbol"]: Decimal(p["qty"]) for p in _body(await client.call_tool("get_positions", {}))["positions"]}
    assert run["status"] == "executed", run["orders"]
    targets = {s: Decimal(v["target_qty"]) for s, v in run["signals"].items()}
    assert targets[short] < 0 and held == targets
    sold = next(o for o in run["orders"] if o["symbol"] == short)
    assert sold["side"] == "sell" and sold["status"] == "filled" and "easy to borrow" in sold["notes"][0]
