"""Fault injection on the order path: PostgreSQL stopped while 100 paper orders are placed, and an
Alpaca fake answering 500s until the breaker opens. Each test states its counts in its assertions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import requests_mock
import sqlalchemy as sa
from mcp import Client

from nt_mcp.adapters.brokers.base import client_order_id_for
from nt_mcp.infra.schema import fills, orders
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.alpaca_fake import TRADING, AlpacaFake
from tests.conftest import create_database, make_settings
from tests.fakes import SetPrices, use_paper_prices
from tests.integration.test_alpaca_broker import alpaca_settings
from tests.integration.test_resilience import eventually
from tests.results import error_of
from tests.servers import PostgresServer

ORDERS = 100


async def test_postgres_stopped_during_100_paper_orders_loses_and_duplicates_nothing(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = await create_database(own_postgres.admin_url)
    settings = make_settings(
        tmp_path,
        database_url=url,
        db_connect_retries=2,
        db_pool_timeout_s=2,
        spool_replay_interval_s=0.2,
        rate_limit_per_minute=100_000,
        risk_max_orders_per_day=0,
        risk_max_position_weight=0,
        risk_max_open_positions=0,
    )
    services = await Services.start(settings)
    placed: dict[str, str] = {}  # idempotency key -> order id the agent was given
    refused: dict[str, dict[str, Any]] = {}  # idempotency key -> the error the agent was given
    async with Client(build_server(services)) as client:
        for i in range(ORDERS):
            if i == 30:
                own_postgres.halt()
            if i == 70:
                own_postgres.resume()
            key = f"order-{i:03d}"
            result = await client.call_tool(
                "place_order", {"symbol": "AAPL", "side": "buy", "qty": 1, "idempotency_key": key}
            )
            if result.is_error:
                refused[key] = error_of(result)
            else:
                placed[key] = result.structured_content["order"]["id"]
        await eventually(lambda: not services.spool.pending(), timeout_s=20)
        assert services.spool.pending() == []

        # every refusal was a clear, retryable error naming what failed
        assert len(placed) + len(refused) == ORDERS
        assert 30 <= len(placed) < ORDERS and len(refused) >= 1
        for error in refused.values():
            assert error["code"] in ("DATABASE_ERROR", "EXTERNAL_API_ERROR") and error["retryable"] is True
            assert "Traceback" not in error["message"]

        # retrying a refused key (as the error says) gives exactly one order, never a second
        for key in refused:
            retry = await client.call_tool(
                "place_order", {"symbol": "AAPL", "side": "buy", "qty": 1, "idempotency_key": key}
            )
            assert not retry.is_error, retry.content
            placed[key] = retry.structured_content["order"]["id"]
        positions = await client.call_tool("get_positions", {})

    async with services.db.connect() as conn:
        rows = (await conn.execute(sa.select(orders.c.id, orders.c.client_order_id, orders.c.status))).all()
        fill_count = (await conn.execute(sa.select(sa.func.count()).select_from(fills))).scalar_one()
    await services.close()
    assert len(rows) == ORDERS  # one journal row per key: 100 rows expected, found len(rows)
    assert len({r.client_order_id for r in rows}) == ORDERS
    assert {r.status for r in rows} == {"filled"}
    assert {r.id for r in rows} == set(placed.values())  # every order the agent was told about exists
    assert fill_count == ORDERS  # and was filled exactly once
    assert [(p["symbol"], p["qty"]) for p in positions.structured_content["positions"]] == [("AAPL", str(ORDERS))]


async def test_alpaca_500s_open_the_breaker_then_calls_fail_fast_without_requests(tmp_path: Path) -> None:
    with requests_mock.Mocker() as mocker:
        fake = AlpacaFake(mocker)
        settings = alpaca_settings(
            make_settings(tmp_path),
            retry_max_attempts=2,
            retry_base_s=0.01,
            retry_max_backoff_s=0.02,
            breaker_fail_max=4,
            breaker_reset_timeout_s=0.6,
        )
        services = await Services.start(settings)
        mocker.get(f"{TRADING}/account", status_code=500, json={"code": 50010000, "message": "internal"})
        async with Client(build_server(services)) as client:
            first = await client.call_tool("get_account", {})
            second = await client.call_tool("get_account", {})
            requests_when_open = len(mocker.request_history)
            started = time.perf_counter()
            fast = [await client.call_tool("get_account", {}) for _ in range(10)]
            elapsed = time.perf_counter() - started
            assert len(mocker.request_history) == requests_when_open  # 10 calls while open: 0 requests
            await asyncio.sleep(0.65)
            mocker.get(f"{TRADING}/account", json=fake._account({}, None))
            recovered = await client.call_tool("get_account", {})
            status = await client.call_tool("server_status", {})
        await services.close()
    assert error_of(first)["code"] == "EXTERNAL_API_ERROR"
    assert requests_when_open == 4  # 2 calls x 2 attempts = fail_max: the breaker opened
    for result in fast:
        error = error_of(result)
        assert error["code"] == "SERVICE_UNAVAILABLE" and error["context"]["service"] == "alpaca-trading"
        assert 0 < error["retry_after_s"] <= 0.6
    assert second.is_error and elapsed < 1.0  # failing fast, not waiting on retries
    assert not recovered.is_error and recovered.structured_content["mode"] == "paper"
    assert status.structured_content["circuit_breakers"] == {"alpaca-trading": "closed"}


class StopsDatabaseBeforeSending:
    """Wraps the paper broker: PostgreSQL goes down after the journal row is written, just before
    the broker is asked to place the order (the paper broker keeps its book in that database)."""

    def __init__(self, inner: Any, server: PostgresServer) -> None:
        self.inner, self.server, self.name = inner, server, inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def submit_order(self, principal: str, request: Any) -> Any:
        await asyncio.to_thread(self.server.halt)
        return await self.inner.submit_order(principal, request)


async def test_an_outage_while_placing_answers_database_error_and_the_order_stays_visible(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = await create_database(own_postgres.admin_url)
    settings = make_settings(
        tmp_path, database_url=url, db_connect_retries=2, db_pool_timeout_s=2, spool_replay_interval_s=0.2
    )
    services = await Services.start(settings)
    use_paper_prices(
        services, SetPrices(AAPL="100"), wrap=lambda broker: StopsDatabaseBeforeSending(broker, own_postgres)
    )
    order = {"symbol": "AAPL", "side": "buy", "qty": 5, "idempotency_key": "during-outage"}
    coid = client_order_id_for("local-operator", "during-outage")
    async with Client(build_server(services)) as client:
        failed = await client.call_tool("place_order", order)
        error = error_of(failed)
        own_postgres.resume()
        pending = await client.call_tool("get_order", {"client_order_id": coid})
        services.broker = services.orders.broker = services.orders.broker.inner  # the database stays up now
        retried = await client.call_tool("place_order", order)
        again = await client.call_tool("place_order", order)
    async with services.db.connect() as conn:
        fill_count = (await conn.execute(sa.select(sa.func.count()).select_from(fills))).scalar_one()
    await services.close()
    assert error["code"] == "DATABASE_ERROR" and error["retryable"] is True and error["retry_after_s"] > 0
    assert "same idempotency_key" in error["message"]
    assert not pending.is_error and pending.structured_content["order"]["status"] == "pending_submit"
    assert pending.structured_content["order"]["client_order_id"] == coid
    assert retried.structured_content["order"]["status"] == "filled"
    assert again.structured_content["replayed"] is True
    assert again.structured_content["order"]["id"] == retried.structured_content["order"]["id"]
    assert fill_count == 1
