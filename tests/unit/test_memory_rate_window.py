"""The in-memory moving window (`infra.ratelimit.MemoryMovingWindow`) answers exactly as the `limits`
library's moving-window limiter over its memory storage, hit for hit, on a seeded random sequence of
cost-weighted hits, tests and window statistics under a controlled clock (the one difference: an empty
window resets a full window from now, where the library reports its last, expired, hit's reset)."""

from __future__ import annotations

import random
import time

import pytest
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from nt_mcp.infra.ratelimit import MemoryMovingWindow


async def test_same_answers_as_the_library_moving_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    ours, library = MemoryMovingWindow(), MovingWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(10)
    rng = random.Random(11)
    refused = 0
    for step in range(2_000):
        clock[0] += rng.choice([0.0, 0.013, 0.7, 3.1, 9.9, 31.3])
        who = rng.choice(["alice", "bob"])
        cost = rng.choice([1, 1, 1, 2, 5, 11])
        match rng.choice(["hit", "hit", "test", "stats"]):
            case "hit":
                allowed = await ours.hit(item, who, "ping", cost=cost)
                assert allowed == await library.hit(item, who, "ping", cost=cost), step
                refused += not allowed
            case "test":
                assert await ours.test(item, who, "ping", cost=cost) == await library.test(
                    item, who, "ping", cost=cost
                ), step
            case _:
                stats = await ours.get_window_stats(item, who, "ping")
                theirs = await library.get_window_stats(item, who, "ping")
                assert stats.remaining == theirs.remaining, step
                if stats.remaining < item.amount:  # when the window is empty the library's reset time
                    assert stats.reset_time == theirs.reset_time, step  # is its last expired hit's
                else:
                    assert stats.reset_time == clock[0] + 60, step
    assert refused > 100  # the sequence did reach the limit, often


async def test_keys_whose_hits_expired_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    window, item = MemoryMovingWindow(), RateLimitItemPerMinute(3)
    for who in ("a", "b", "c"):
        assert await window.hit(item, who)
    clock[0] += 61
    assert await window.hit(item, "d")
    assert len(window._windows) == 1  # only d's window is left
    assert (await window.get_window_stats(item, "a")).remaining == 3
