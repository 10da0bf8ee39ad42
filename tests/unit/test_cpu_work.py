"""CpuWork: jobs run off the event loop, forward progress, stop when the call is cancelled, and hold their
slot until the thread has really finished."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from nt_mcp.services.cpu_work import CpuWork, Progress, StopCheck


async def test_progress_is_forwarded_and_the_result_returned() -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def report(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    def job(progress: Progress, should_stop: StopCheck) -> int:
        for i in range(3):
            progress(i, 3, f"step {i}")
        return threading.get_ident()

    ident = await CpuWork(1).run(job, report)
    assert ident != threading.get_ident()  # ran in a worker thread
    assert [s[0] for s in seen] == [0, 1, 2] and seen[-1][2] == "step 2"


async def test_a_cancelled_call_stops_its_job_and_frees_the_slot_after_it_ends() -> None:
    work = CpuWork(1)
    started, stopped = threading.Event(), threading.Event()

    def slow(progress: Progress, should_stop: StopCheck) -> None:
        started.set()
        while not should_stop():
            time.sleep(0.01)
        time.sleep(0.2)  # the fit in progress finishes before the job notices
        stopped.set()

    task = asyncio.ensure_future(work.run(slow))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not stopped.is_set()  # still finishing its fit
    began = time.perf_counter()
    await work.run(lambda progress, should_stop: None)  # waits for the slot
    assert stopped.is_set() and time.perf_counter() - began > 0.05


async def test_a_timeout_stops_the_job() -> None:
    work = CpuWork(2)
    stopped = threading.Event()

    def endless(progress: Progress, should_stop: StopCheck) -> None:
        while not should_stop():
            time.sleep(0.01)
        stopped.set()

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(work.run(endless), timeout=0.2)
    assert await asyncio.to_thread(stopped.wait, 5)
