"""Running stored jobs: a worker loop per process that claims queued jobs, runs them off the event loop,
renews their lease while they run, and stores the outcome.

A *kind* names the work (e.g. ``optimize_strategy``) and maps to a `JobKind`: an async ``run(job,
report, should_stop)`` returning the result as a JSON-able dict (the same output model as the foreground
tool), and whether the work is idempotent (then a job whose worker died is requeued, up to
``max_attempts``; otherwise it is failed with the reason). ``report(done, total, message)`` records
progress; the ETA is ``elapsed / progress * (1 - progress)`` from the job's start (None until some
progress is reported).

On start the runner reaps expired leases once (a restart: jobs the previous process was running are
requeued or failed), then polls: a job submitted in this process wakes the loop at once; idle, it
looks for jobs queued by other processes every ``poll_s`` (2 s) and for expired leases every
``reap_every_s`` (5 s), so an idle server runs a few cheap queries a second, not a steady stream. Any replica answers
reads from the table, so a job started through one replica is read through another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nt_mcp.infra.jobs import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobStore, StoredJob

log = logging.getLogger(__name__)

Report = Callable[[int, int, str], Awaitable[None]]
StopCheck = Callable[[], bool]
RunJob = Callable[[StoredJob, Report, StopCheck], Coroutine[Any, Any, dict[str, Any]]]


class JobCancelled(Exception):
    """Raised by a job's work when it noticed ``should_stop()`` after a cancel."""


@dataclass(frozen=True)
class JobKind:
    name: str
    run: RunJob
    idempotent: bool
    max_attempts: int = 3


def eta_seconds(job: StoredJob, now: datetime | None = None) -> float | None:
    """Seconds left, extrapolated linearly from progress since the job started: ``elapsed / p * (1 - p)``.
    None before the job runs or reports progress; 0 once it ended."""
    if job.state not in (RUNNING,):
        return 0.0 if job.finished_at is not None else None
    if job.started_at is None or job.progress <= 0.0:
        return None
    elapsed = ((now or datetime.now(UTC)) - job.started_at).total_seconds()
    return max(0.0, elapsed / job.progress * (1.0 - job.progress))


class JobRunner:
    """Claims and runs jobs of the registered kinds, at most ``concurrency`` at a time in this process."""

    def __init__(
        self,
        store: JobStore,
        kinds: dict[str, JobKind],
        *,
        concurrency: int = 1,
        lease: timedelta = timedelta(seconds=30),
        poll_s: float = 2.0,
        reap_every_s: float = 5.0,
    ) -> None:
        self.store = store
        self.kinds = kinds
        self.worker_id = f"w-{secrets.token_hex(6)}"
        self.lease = lease
        self.poll_s = poll_s  # idle: jobs submitted here wake the loop at once; this is for other processes'
        self.reap_every_s = reap_every_s  # expired leases (a stopped worker's jobs) are looked for this often
        self._next_reap = 0.0
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, *, job_id: str | None, principal: str, kind: str, arguments: dict[str, Any]) -> StoredJob:
        """Queue a job of ``kind`` (a registered one) and wake the loop."""
        spec = self.kinds[kind]
        job = await self.store.insert(
            job_id=job_id or f"job-{secrets.token_hex(8)}",
            principal=principal,
            kind=kind,
            arguments=arguments,
            idempotent=spec.idempotent,
            max_attempts=spec.max_attempts if spec.idempotent else 1,
        )
        self._wake.set()
        return job

    async def start(self) -> None:
        """Reap what a previous process left running, then poll for work in the background."""
        requeued, failed = await self.store.reap_expired()
        if requeued or failed:
            log.warning("jobs left by a stopped worker", extra={"requeued": requeued, "failed": failed})
        self._loop_task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop polling and cancel the running jobs (their leases expire; idempotent ones are requeued)."""
        tasks = [t for t in (self._loop_task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                job = await self.store.claim(self.worker_id, self.lease, frozenset(self.kinds))
            except Exception as error:  # storage down: keep polling, the jobs wait in the table
                log.warning("claiming a job failed", extra={"error": type(error).__name__})
                job = None
            if job is None:
                self._slots.release()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                if time.monotonic() >= self._next_reap:
                    self._next_reap = time.monotonic() + self.reap_every_s
                    with contextlib.suppress(Exception):
                        await self.store.reap_expired()
                continue
            task = asyncio.create_task(self._execute_logged(job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: self._slots.release())

    async def _execute_logged(self, job: StoredJob) -> None:
        """Run ``job``; when its outcome cannot be stored (storage down), its lease expires and the
        reaper requeues or fails it."""
        try:
            await self._execute(job)
        except Exception as error:
            log.warning("storing a job's outcome failed", extra={"job_id": job.id, "error": type(error).__name__})

    async def _execute(self, job: StoredJob) -> None:
        stop = asyncio.Event()

        async def report(done: int, total: int, message: str) -> None:
            fraction = done / total if total > 0 else 0.0
            if not await self.store.heartbeat(job.id, self.worker_id, self.lease, progress=fraction, message=message):
                stop.set()

        async def keep_lease() -> None:
            while not stop.is_set():
                await asyncio.sleep(self.lease.total_seconds() / 3)
                if not await self.store.heartbeat(job.id, self.worker_id, self.lease):
                    stop.set()

        keeper = asyncio.create_task(keep_lease())
        work: asyncio.Task[dict[str, Any]] = asyncio.create_task(self.kinds[job.kind].run(job, report, stop.is_set))

        async def cancel_on_stop() -> None:
            await stop.wait()
            work.cancel()

        watcher = asyncio.create_task(cancel_on_stop())
        try:
            try:
                result = await work
            except asyncio.CancelledError:
                if not work.cancelled():
                    raise
                raise JobCancelled() from None
        except JobCancelled:
            await self.store.finish(job.id, self.worker_id, CANCELLED, error="cancelled by its caller")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            cancelled = await self.store.cancel_requested(job.id)
            state = CANCELLED if cancelled else FAILED
            reason = "cancelled by its caller" if cancelled else f"{type(error).__name__}: {error}"
            await self.store.finish(job.id, self.worker_id, state, error=reason)
        else:
            if await self.store.cancel_requested(job.id):
                await self.store.finish(job.id, self.worker_id, CANCELLED, error="cancelled by its caller")
            else:
                await self.store.finish(job.id, self.worker_id, SUCCEEDED, result=result)
        finally:
            for helper in (keeper, watcher, work):
                helper.cancel()
            for helper in (keeper, watcher, work):
                with contextlib.suppress(BaseException):
                    await helper
