"""The cache on process memory and on real Redis: TTLs, JSON values, and single-flight loading."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nt_mcp.infra.cache import Cache, build_cache
from nt_mcp.infra.redis_link import RedisLink


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    link = RedisLink(request.getfixturevalue("redis_url")) if request.param == "redis" else None
    built = build_cache(link, default_ttl_s=30)
    assert built.name == request.param
    try:
        yield built
    finally:
        await built.close()
        if link is not None:
            await link.close()


async def test_values_round_trip_and_expire(cache: Cache) -> None:
    await cache.set("quote:AAPL", {"bid": "187.10", "ask": "187.12", "size": [1, 2]}, ttl_s=0.2)
    assert await cache.get("quote:AAPL") == {"bid": "187.10", "ask": "187.12", "size": [1, 2]}
    await asyncio.sleep(0.35)
    assert await cache.get("quote:AAPL") is None


async def test_fifty_concurrent_misses_make_one_upstream_call(cache: Cache) -> None:
    calls = 0

    async def upstream() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return {"bars": 390}

    results = await asyncio.gather(*(cache.get_or_load("bars:SPY:1Min", upstream) for _ in range(50)))
    assert calls == 1
    assert results == [{"bars": 390}] * 50
    assert await cache.get_or_load("bars:SPY:1Min", upstream) == {"bars": 390}
    assert calls == 1  # now served from the cache


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached(cache: Cache) -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise ConnectionError("upstream down")

    outcomes = await asyncio.gather(*(cache.get_or_load("k", failing) for _ in range(10)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert await cache.get("k") is None


async def test_a_cancelled_loader_does_not_strand_its_waiters(cache: Cache) -> None:
    async def slow() -> str:
        await asyncio.sleep(0.2)
        return "value"

    first = asyncio.create_task(cache.get_or_load("slow", slow))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cache.get_or_load("slow", slow))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await waiter == "value"
