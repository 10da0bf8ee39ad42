"""Fault injection on real servers: Redis and PostgreSQL stopped and restarted by the test, and an
upstream HTTP fake (respx) that fails. Every test states its numbers in its assertions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import respx
import sqlalchemy as sa
from mcp import Client

from nt_mcp.errors import BusinessLogicError, ExternalAPIError, ServiceUnavailableError
from nt_mcp.infra.resilience import Upstreams
from nt_mcp.infra.schema import audit_log
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.conftest import create_database, make_settings
from tests.servers import PostgresServer, RedisServer

UPSTREAM = "https://upstream.test/v2/data"


async def eventually(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition`` (state a background task changes) until true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def fetch(client: httpx.AsyncClient) -> dict[str, Any]:
    """A minimal adapter: HTTP errors become the typed errors, as every real adapter does."""
    response = await client.get(UPSTREAM)
    if response.status_code >= 400:
        retry_after = response.headers.get("retry-after")
        raise ExternalAPIError(
            f"upstream answered {response.status_code}",
            service="upstream",
            status=response.status_code,
            retry_after_s=float(retry_after) if retry_after else None,
        )
    return dict(response.json())


@pytest.fixture
def fast_settings(tmp_path: Path) -> Any:
    return make_settings(
        tmp_path,
        retry_max_attempts=3,
        retry_base_s=0.01,
        retry_max_backoff_s=0.05,
        retry_max_total_s=5,
        breaker_fail_max=3,
        breaker_reset_timeout_s=0.5,
    )


@respx.mock
async def test_500s_retry_then_open_the_breaker_which_fails_fast_then_probes_and_closes(fast_settings: Any) -> None:
    upstreams = Upstreams(fast_settings)
    route = respx.get(UPSTREAM).mock(return_value=httpx.Response(500, json={"message": "boom"}))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ExternalAPIError):
            await upstreams.call("upstream", lambda: fetch(client), idempotent=True)
        assert route.call_count == 3  # one call, retried up to 3 attempts; 3 failures reach fail_max

        assert upstreams.states() == {"upstream": "open"}
        started = time.perf_counter()
        for _ in range(20):
            with pytest.raises(ServiceUnavailableError) as refused:
                await upstreams.call("upstream", lambda: fetch(client), idempotent=True)
        assert route.call_count == 3  # 20 calls while open: no upstream request at all
        assert time.perf_counter() - started < 1.0  # and they failed fast
        assert refused.value.to_dict()["context"]["service"] == "upstream"
        assert 0 < refused.value.retry_after_s <= 0.5

        await asyncio.sleep(0.55)
        route.mock(return_value=httpx.Response(200, json={"bars": 1}))
        assert await upstreams.call("upstream", lambda: fetch(client), idempotent=True) == {"bars": 1}
        assert route.call_count == 4  # exactly one half-open probe, which succeeded
        assert upstreams.states() == {"upstream": "closed"}
    upstreams.close()


@respx.mock
async def test_a_failed_half_open_probe_opens_the_breaker_again(fast_settings: Any) -> None:
    upstreams = Upstreams(fast_settings)
    route = respx.get(UPSTREAM).mock(return_value=httpx.Response(503))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ExternalAPIError):
            await upstreams.call("upstream", lambda: fetch(client), idempotent=True)
        await asyncio.sleep(0.55)
        with pytest.raises(ExternalAPIError):
            await upstreams.call("upstream", lambda: fetch(client), idempotent=True)
        assert route.call_count == 4  # 3 attempts, then a single probe (not retried while half-open)
        assert upstreams.states() == {"upstream": "open"}
    upstreams.close()


@respx.mock
async def test_429_reset_header_is_waited_for(fast_settings: Any) -> None:
    upstreams = Upstreams(fast_settings)
    route = respx.get(UPSTREAM).mock(
        side_effect=[httpx.Response(429, headers={"retry-after": "0.4"}), httpx.Response(200, json={"ok": 1})]
    )
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        assert await upstreams.call("upstream", lambda: fetch(client), idempotent=True) == {"ok": 1}
        waited = time.perf_counter() - started
    assert route.call_count == 2
    assert waited >= 0.4  # the backoff alone would have been ~0.01-0.02 s
    upstreams.close()


@respx.mock
async def test_non_idempotent_calls_and_4xx_are_never_retried_and_never_trip(fast_settings: Any) -> None:
    upstreams = Upstreams(fast_settings)
    route = respx.get(UPSTREAM).mock(return_value=httpx.Response(500))
    async with httpx.AsyncClient() as client:
        with pytest.raises(ExternalAPIError):
            await upstreams.call("upstream", lambda: fetch(client), idempotent=False)
        assert route.call_count == 1
        route.mock(return_value=httpx.Response(422, json={"message": "qty must be > 0"}))
        for _ in range(10):
            with pytest.raises(ExternalAPIError) as rejected:
                await upstreams.call("upstream", lambda: fetch(client), idempotent=True)
            assert rejected.value.retryable is False
    assert route.call_count == 11  # 1 + 10 rejected calls, none retried
    assert upstreams.states() == {"upstream": "closed"}  # 10 business errors did not trip fail_max=3

    async def rejected_order() -> None:
        raise BusinessLogicError("insufficient buying power")

    for _ in range(5):
        with pytest.raises(BusinessLogicError):
            await upstreams.call("broker", rejected_order, idempotent=True)
    assert upstreams.states()["broker"] == "closed"
    upstreams.close()


async def test_breaker_on_a_frozen_redis_falls_back_to_memory_and_still_opens(tmp_path: Path) -> None:
    """Redis frozen (SIGSTOP): the first breaker step waits out one socket timeout, then the state lives
    in process memory (no more waiting), and upstream failures during the outage still open the breaker."""
    server = RedisServer.start()
    settings = make_settings(
        tmp_path, redis_url=server.url, breaker_fail_max=3, retry_max_attempts=1, redis_probe_interval_s=30
    )
    upstreams = Upstreams(settings)

    async def ok() -> int:
        return 1

    async def down() -> int:
        raise ExternalAPIError("upstream answered 503", service="upstream", status=503)

    try:
        assert await upstreams.call("upstream", ok, idempotent=True) == 1
        server.freeze()
        started = time.perf_counter()
        assert await upstreams.call("upstream", ok, idempotent=True) == 1  # notices: one socket timeout
        first = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(3):
            with pytest.raises(ExternalAPIError):
                await upstreams.call("upstream", down, idempotent=True)
        with pytest.raises(ServiceUnavailableError):
            await upstreams.call("upstream", ok, idempotent=True)
        rest = time.perf_counter() - started
        assert upstreams.states()["upstream"] == "open"
    finally:
        server.stop()
        upstreams.close()
    assert first < 3.5  # at most a few 1 s socket timeouts, once
    assert rest < 0.5  # four more calls without waiting on Redis (pybreaker's own storage: ~4 s each)


async def test_breaker_on_a_stalled_redis_never_blocks_the_event_loop(
    fast_settings: Any, redis_url: str, tmp_path: Path
) -> None:
    upstreams = Upstreams(make_settings(tmp_path, redis_url=redis_url, breaker_fail_max=3))
    await upstreams.breaker("upstream")  # created while Redis answers
    admin = redis.Redis.from_url(redis_url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def ok() -> int:
        return 1

    ticking = asyncio.create_task(ticker())
    admin.execute_command("CLIENT", "PAUSE", "400", "ALL")  # Redis answers nothing for 0.4 s
    started = time.perf_counter()
    assert await upstreams.call("upstream", ok, idempotent=True) == 1
    elapsed = time.perf_counter() - started
    ticking.cancel()
    assert elapsed >= 0.3  # the breaker's Redis round trips really waited for the pause...
    assert ticks >= 15  # ...while the event loop kept running (about 40 ticks of 10 ms)
    admin.close()
    upstreams.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_stopped_during_200_calls_degrades_and_recovers(own_redis: RedisServer, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, redis_url=own_redis.url, rate_limit_per_minute=10_000, redis_probe_interval_s=0.2, tool_timeout_s=5
    )
    services = await Services.start(settings)
    answered, slowest = 0, 0.0
    async with Client(build_server(services)) as client:
        for i in range(200):
            if i == 50:
                own_redis.stop()
                down = await client.call_tool("server_status", {})
            started = time.perf_counter()
            result = await client.call_tool("ping", {"echo": str(i)})
            slowest = max(slowest, time.perf_counter() - started)
            assert not result.is_error, result.content
            answered += result.structured_content["echo"] == str(i)
        restarted = RedisServer.start(port=own_redis.port)
        try:
            await asyncio.sleep(0.3)
            back = await client.call_tool("server_status", {})
        finally:
            restarted.stop()
    await services.close()
    assert answered == 200  # every one of the 200 calls answered
    assert slowest < 5  # none waited past the tool deadline
    assert down.structured_content["status"] == "degraded"
    assert any("Redis unreachable" in r for r in down.structured_content["degraded_reasons"])
    assert back.structured_content["status"] == "ok", back.structured_content["degraded_reasons"]
    assert back.structured_content["cache"] == {"backend": "redis", "healthy": True}


async def _audit_count(services: Services) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one())


async def test_postgres_down_spools_audit_rows_and_replays_each_exactly_once(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = await create_database(own_postgres.admin_url)
    settings = make_settings(
        tmp_path,
        database_url=url,
        db_connect_retries=2,
        db_pool_timeout_s=2,
        spool_replay_interval_s=0.2,
        rate_limit_per_minute=10_000,
        audit_flush_ms=0,  # one spool file per row; batched rows through an outage: test_durability
    )
    services = await Services.start(settings)
    async with Client(build_server(services)) as client:
        for i in range(20):
            assert not (await client.call_tool("ping", {"echo": str(i)})).is_error
        assert await _audit_count(services) == 20

        own_postgres.halt()
        for i in range(30):  # the tools keep answering; their audit rows go to the spool
            assert not (await client.call_tool("ping", {"echo": f"down-{i}"})).is_error
        assert len(services.spool.pending()) == 30
        status = await client.call_tool("server_status", {})
        assert status.structured_content["status"] == "degraded"
        assert status.structured_content["storage"]["healthy"] is False

        own_postgres.resume()
        await eventually(lambda: not services.spool.pending(), timeout_s=15)
        assert services.spool.pending() == []
    rows = 20 + 30 + 1  # 20 before, 30 during, the status call during the outage
    async with services.db.connect() as conn:
        echoes = (await conn.execute(sa.select(audit_log.c.arguments).where(audit_log.c.tool == "ping"))).all()
    assert await _audit_count(services) == rows
    assert sorted(e[0]["echo"] for e in echoes if e[0]["echo"].startswith("down-")) == sorted(
        f"down-{i}" for i in range(30)
    )
    await services.close()


async def test_a_write_that_keeps_failing_lands_in_dead_letters_after_n_attempts(tmp_path: Path) -> None:
    services = await Services.start(make_settings(tmp_path, spool_max_attempts=2))
    # A spooled write naming a column the table does not have: it can never apply.
    services.spool.append("update", "audit_log", {"no_such_column": 1}, key={"id": 1})
    first = await services.replayer.replay_once()
    second = await services.replayer.replay_once()
    letters = await services.replayer.dead_letters()
    await services.close()
    assert (first.replayed, first.dead_lettered, first.remaining) == (0, 0, 1)
    assert (second.replayed, second.dead_lettered, second.remaining) == (0, 1, 0)
    assert [(d["kind"], d["attempts"]) for d in letters] == [("update:audit_log", 2)]


async def test_a_constraint_violation_is_dead_lettered_at_once_and_later_rows_still_replay(tmp_path: Path) -> None:
    services = await Services.start(make_settings(tmp_path, spool_max_attempts=5))
    services.spool.append("insert", "audit_log", {"ts": "2026-11-22T00:00:00+00:00", "principal": "p"})  # NOT NULLs
    good = {
        "ts": "2026-11-22T00:00:01+00:00",
        "principal": "p",
        "tool": "ping",
        "outcome": "ok",
        "duration_ms": 1.0,
        "correlation_id": "c1",
        "arguments": None,
    }
    services.spool.append("insert", "audit_log", good)
    report = await services.replayer.replay_once()
    letters = await services.replayer.dead_letters()
    rows = await services.audit.recent("p", 10)
    await services.close()
    assert (report.replayed, report.dead_lettered, report.remaining) == (1, 1, 0)
    assert len(letters) == 1 and "constraint violated" in letters[0]["error"]
    assert [r.correlation_id for r in rows] == ["c1"]


def test_dlq_cli_lists_and_replays_the_spool(tmp_path: Path) -> None:
    import json

    from nt_mcp.infra.spool import Spool
    from tests.cli import run_cli

    def cli(*args: str) -> list[dict[str, Any]]:
        done = run_cli(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    cli("db", "upgrade")
    row = {
        "ts": "2026-11-22T00:00:01+00:00",
        "principal": "p",
        "tool": "ping",
        "outcome": "ok",
        "duration_ms": 1.0,
        "correlation_id": "c1",
        "arguments": None,
    }
    Spool(tmp_path / "data" / "spool").append("insert", "audit_log", row)
    listed = cli("dlq", "list")
    assert [(e["where"], e["table"], e["attempts"]) for e in listed] == [("spool", "audit_log", 0)]
    assert cli("dlq", "replay") == [
        {
            "spool_replayed": 1,
            "spool_dead_lettered": 0,
            "spool_remaining": 0,
            "dead_letters_resolved": 0,
            "dead_letters_still_failing": 0,
        }
    ]
    assert cli("dlq", "list") == []
