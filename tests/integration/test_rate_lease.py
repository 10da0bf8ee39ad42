"""Rate-limit leases on Redis: a large budget is not asked of Redis on every call, and the shared
window still holds across processes (each `RateLimiter` here stands for one server process)."""

from __future__ import annotations

import redis.asyncio as aioredis

from nt_mcp.infra.ratelimit import LEASE_SHARE, RateLimiter
from nt_mcp.infra.redis_link import RedisLink


async def evalsha_calls(url: str) -> int:
    client = aioredis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_a_large_budget_costs_one_round_trip_per_lease_and_stops_at_the_budget(redis_url: str) -> None:
    budget = 5_000
    limiter = RateLimiter(budget, RedisLink(redis_url))
    assert limiter.lease_units == budget // LEASE_SHARE == 100
    before = await evalsha_calls(redis_url)
    allowed = [(await limiter.hit("alice", "ping")).allowed for _ in range(budget + 50)]
    trips = await evalsha_calls(redis_url) - before
    assert allowed.count(True) == budget  # one process: every leased unit is spent, none beyond
    refused = await limiter.hit("alice", "ping")
    assert not refused.allowed and 0 < refused.retry_after_s <= 60
    # one acquire per 100 calls, one lease that no longer fits, then each refused call: exact cost + retry time
    assert trips <= budget // 100 + 1 + 2 * 51
    assert (await limiter.hit("bob", "ping")).allowed  # budgets are per principal


async def test_two_processes_share_one_budget_within_their_leases(redis_url: str) -> None:
    budget = 5_000
    a, b = RateLimiter(budget, RedisLink(redis_url)), RateLimiter(budget, RedisLink(redis_url))
    allowed = 0
    for i in range(budget + 400):
        allowed += (await (a if i % 3 else b).hit("carol", "quote")).allowed
    # leased but unspent units count too: at most one lease per process short of the budget
    assert budget - 2 * a.lease_units <= allowed <= budget


async def test_small_budgets_are_counted_call_by_call(redis_url: str) -> None:
    a, b = RateLimiter(45, RedisLink(redis_url)), RateLimiter(45, RedisLink(redis_url))
    assert a.lease_units == 0
    results = [(await (a if i % 2 else b).hit("dave", "ping")).allowed for i in range(60)]
    assert results.count(True) == 45 and results[:45] == [True] * 45


async def test_a_call_costing_more_than_a_lease_acquires_its_own_cost(redis_url: str) -> None:
    limiter = RateLimiter(5_000, RedisLink(redis_url))
    assert (await limiter.hit("erin", "optimize", cost=400)).allowed
    assert (await limiter.hit("erin", "optimize", cost=4_600)).allowed  # exactly what is left
    assert not (await limiter.hit("erin", "optimize", cost=1)).allowed
