"""The jobs table on SQLite and PostgreSQL: claiming, leases, restart survival, per-principal visibility."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nt_mcp.infra.db import Database
from nt_mcp.infra.jobs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobStore

LEASE = timedelta(seconds=30)


async def _new(store: JobStore, job_id: str, *, principal: str = "alice", idempotent: bool = True, attempts: int = 2):
    return await store.insert(
        job_id=job_id,
        principal=principal,
        kind="optimize_strategy",
        arguments={"symbol": "SPY"},
        idempotent=idempotent,
        max_attempts=attempts,
    )


async def test_claim_heartbeat_finish_and_result_is_readable(db: Database) -> None:
    store = JobStore(db)
    await _new(store, "j1")
    claimed = await store.claim("worker-a", LEASE)
    assert claimed is not None and claimed.id == "j1" and claimed.state == RUNNING and claimed.attempts == 1
    assert await store.claim("worker-b", LEASE) is None  # nothing else queued
    assert await store.heartbeat("j1", "worker-a", LEASE, progress=0.5, message="half")
    seen = await store.get("alice", "j1")
    assert seen is not None and seen.progress == 0.5 and seen.message == "half"
    assert not await store.finish("j1", "worker-b", SUCCEEDED, result={"x": 1})  # not the lease owner
    assert await store.finish("j1", "worker-a", SUCCEEDED, result={"best": {"fast": 5}})
    done = await store.get("alice", "j1")
    assert done is not None and done.state == SUCCEEDED and done.result == {"best": {"fast": 5}}
    assert done.progress == 1.0 and done.finished_at is not None


async def test_concurrent_claims_give_each_job_to_one_worker(db: Database) -> None:
    store = JobStore(db)
    for i in range(6):
        await _new(store, f"c{i}")
    claims = await asyncio.gather(*(store.claim(f"w{i}", LEASE) for i in range(10)))
    ids = [job.id for job in claims if job is not None]
    assert sorted(ids) == sorted(set(ids))  # no job claimed twice
    while (job := await store.claim("late", LEASE)) is not None:
        ids.append(job.id)
    assert sorted(ids) == [f"c{i}" for i in range(6)]


async def test_expired_lease_requeues_idempotent_jobs_and_fails_the_others(db: Database) -> None:
    store = JobStore(db)
    await _new(store, "sweep", idempotent=True, attempts=2)
    await _new(store, "train", idempotent=False, attempts=1)
    assert (await store.claim("dead", timedelta(seconds=-1))) is not None
    assert (await store.claim("dead", timedelta(seconds=-1))) is not None
    requeued, failed = await store.reap_expired()  # what the next start does
    assert requeued == ["sweep"] and failed == ["train"]
    sweep = await store.get("alice", "sweep")
    train = await store.get("alice", "train")
    assert sweep is not None and sweep.state == QUEUED and sweep.attempts == 1
    assert train is not None and train.state == FAILED and "lease expired" in (train.error or "")
    assert not await store.finish("train", "dead", SUCCEEDED, result={})  # the dead worker cannot finish it
    # second loss of the sweep uses its last attempt: failed with the reason
    assert (await store.claim("dead2", timedelta(seconds=-1))) is not None
    requeued, failed = await store.reap_expired()
    assert requeued == [] and failed == ["sweep"]


async def test_jobs_are_visible_and_cancellable_only_by_their_principal(db: Database) -> None:
    store = JobStore(db)
    await _new(store, "a1", principal="alice")
    await _new(store, "b1", principal="bob")
    assert [job.id for job in await store.list_for("alice")] == ["a1"]
    assert await store.get("bob", "a1") is None
    assert await store.cancel("bob", "a1") is None
    assert (await store.get("alice", "a1")).state == QUEUED  # type: ignore[union-attr]
    cancelled = await store.cancel("alice", "a1")
    assert cancelled is not None and cancelled.state == CANCELLED
    assert await store.claim("w", LEASE) is not None  # only bob's job remains claimable
    running = await store.cancel("bob", "b1")
    assert running is not None and running.state == RUNNING and running.cancel_requested
    assert not await store.heartbeat("b1", "w", LEASE)  # the worker learns it must stop
    assert await store.finish("b1", "w", CANCELLED)
    assert (await store.get("bob", "b1")).state == CANCELLED  # type: ignore[union-attr]


async def _wait_terminal(store: JobStore, principal: str, job_id: str, timeout_s: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job = await store.get(principal, job_id)
        assert job is not None
        if job.state in (SUCCEEDED, FAILED, CANCELLED):
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job still {job.state}"
        await asyncio.sleep(0.05)


async def test_runner_runs_jobs_reports_progress_and_cancels(db: Database) -> None:
    from nt_mcp.services.jobs import JobCancelled, JobKind, JobRunner, eta_seconds

    release = asyncio.Event()

    async def square_sum(job, report, should_stop):  # type: ignore[no-untyped-def]
        arguments = job.arguments
        n = int(arguments["n"])
        total = 0
        for i in range(n):
            if should_stop():
                raise JobCancelled()
            total += i * i
            await report(i + 1, n, f"{i + 1}/{n}")
            if arguments.get("wait"):
                await release.wait()
        return {"sum": total}

    store = JobStore(db)
    runner = JobRunner(store, {"square_sum": JobKind("square_sum", square_sum, idempotent=True)}, poll_s=0.05)
    await runner.start()
    try:
        job = await runner.submit(job_id=None, principal="alice", kind="square_sum", arguments={"n": 50})
        done = await _wait_terminal(store, "alice", job.id)
        assert done.state == SUCCEEDED and done.result == {"sum": sum(i * i for i in range(50))}
        assert eta_seconds(done) == 0.0

        slow = await runner.submit(job_id=None, principal="alice", kind="square_sum", arguments={"n": 4, "wait": True})
        for _ in range(400):
            current = await store.get("alice", slow.id)
            if current is not None and current.progress > 0.0:
                break
            await asyncio.sleep(0.05)
        assert current is not None and current.state == RUNNING and current.progress == 0.25
        assert eta_seconds(current) is not None
        await store.cancel("alice", slow.id)
        release.set()
        cancelled = await _wait_terminal(store, "alice", slow.id)
        assert cancelled.state == CANCELLED and cancelled.result is None
    finally:
        await runner.stop()


async def test_runner_start_requeues_a_job_left_running_by_a_dead_process(db: Database) -> None:
    from nt_mcp.services.jobs import JobKind, JobRunner

    store = JobStore(db)
    await _new(store, "left", idempotent=True, attempts=3)
    assert await store.claim("dead-process", timedelta(seconds=-1)) is not None

    async def answer(job, report, should_stop):  # type: ignore[no-untyped-def]
        return {"symbol": job.arguments["symbol"]}

    runner = JobRunner(store, {"optimize_strategy": JobKind("optimize_strategy", answer, idempotent=True)}, poll_s=0.05)
    await runner.start()
    try:
        done = await _wait_terminal(store, "alice", "left")
        assert done.state == SUCCEEDED and done.result == {"symbol": "SPY"} and done.attempts == 2
    finally:
        await runner.stop()
