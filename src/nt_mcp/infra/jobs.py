"""Stored jobs: long work (parameter sweeps, forecaster training) as rows in the ``jobs`` table, so any
replica answers ``get_job`` and a restart loses nothing.

States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled`` (a queued job may be
cancelled directly). A worker *claims* the oldest queued job with a compare-and-set update
(``WHERE state = 'queued'``; on PostgreSQL the candidate is selected ``FOR UPDATE SKIP LOCKED`` so
concurrent replicas never wait on each other), which sets ``lease_owner`` and
``lease_expires_at = now + lease``. While it works it renews the lease (`heartbeat`, which also
records progress). `reap_expired` handles a worker that died: a ``running`` row whose lease expired is
requeued when the work is idempotent and ``attempts < max_attempts``, otherwise marked ``failed``
with the reason. Only the owner of the lease can finish a job, so a reaped-and-reclaimed job is never
finished twice. Every read is scoped to the principal that started the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import jobs

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone-aware columns; they are stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StoredJob:
    id: str
    principal: str
    kind: str
    arguments: dict[str, Any]
    state: str
    progress: float
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    idempotent: bool
    attempts: int
    max_attempts: int
    cancel_requested: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


def _row_to_job(row: Any) -> StoredJob:
    values = dict(row._mapping)
    for name in ("lease_expires_at", "created_at", "started_at", "finished_at", "updated_at"):
        values[name] = _aware(values[name])
    values["progress"] = float(values["progress"])
    values["idempotent"] = bool(values["idempotent"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return StoredJob(**values)


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(
        self,
        *,
        job_id: str,
        principal: str,
        kind: str,
        arguments: dict[str, Any],
        idempotent: bool,
        max_attempts: int,
    ) -> StoredJob:
        """Store a new ``queued`` job and return it."""
        now = _now()
        values = {
            "id": job_id,
            "principal": principal,
            "kind": kind,
            "arguments": arguments,
            "state": QUEUED,
            "progress": 0.0,
            "idempotent": idempotent,
            "attempts": 0,
            "max_attempts": max(1, max_attempts),
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
        }

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(jobs.insert().values(**values))

        await self.db.transaction(work)
        job = await self._get(job_id)
        assert job is not None
        return job

    async def _get(self, job_id: str) -> StoredJob | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        return None if row is None else _row_to_job(row)

    async def get(self, principal: str, job_id: str) -> StoredJob | None:
        """The job ``job_id`` if ``principal`` started it; else None (another principal's job is unseen)."""
        async with self.db.connect() as conn:
            query = sa.select(jobs).where(jobs.c.id == job_id, jobs.c.principal == principal)
            row = (await conn.execute(query)).first()
        return None if row is None else _row_to_job(row)

    async def list_for(self, principal: str, *, state: str | None = None, limit: int = 50) -> list[StoredJob]:
        """``principal``'s jobs, newest first, optionally only those in ``state``."""
        query = sa.select(jobs).where(jobs.c.principal == principal)
        if state is not None:
            query = query.where(jobs.c.state == state)
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row_to_job(row) for row in rows]

    async def claim(self, worker: str, lease: timedelta, kinds: frozenset[str] | None = None) -> StoredJob | None:
        """Claim the oldest queued job (of ``kinds`` if given) for ``worker``: state ``running``, one more
        attempt, a lease until now + ``lease``. None when nothing is queued or another worker won."""

        async def work(conn: AsyncConnection) -> str | None:
            candidate = sa.select(jobs.c.id).where(jobs.c.state == QUEUED)
            if kinds is not None:
                candidate = candidate.where(jobs.c.kind.in_(sorted(kinds)))
            candidate = candidate.order_by(jobs.c.created_at, jobs.c.id).limit(1)
            if self.db.backend == "postgresql":
                candidate = candidate.with_for_update(skip_locked=True)
            job_id = (await conn.execute(candidate)).scalar_one_or_none()
            if job_id is None:
                return None
            now = _now()
            updated = await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == QUEUED)
                .values(
                    state=RUNNING,
                    attempts=jobs.c.attempts + 1,
                    lease_owner=worker,
                    lease_expires_at=now + lease,
                    started_at=sa.func.coalesce(jobs.c.started_at, now),
                    updated_at=now,
                )
            )
            return job_id if updated.rowcount == 1 else None

        job_id = await self.db.transaction(work)
        return None if job_id is None else await self._get(job_id)

    async def heartbeat(
        self, job_id: str, worker: str, lease: timedelta, *, progress: float | None = None, message: str | None = None
    ) -> bool:
        """Renew ``worker``'s lease on ``job_id`` and record progress (0..1). False when the worker no
        longer holds the job (it was reaped, or cancelled): the worker should stop."""
        now = _now()
        values: dict[str, Any] = {"lease_expires_at": now + lease, "updated_at": now}
        if progress is not None:
            values["progress"] = min(1.0, max(0.0, float(progress)))
        if message is not None:
            values["message"] = message

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == job_id,
                    jobs.c.lease_owner == worker,
                    jobs.c.state == RUNNING,
                    jobs.c.cancel_requested.is_(False),
                )
                .values(**values)
            )
            return result.rowcount == 1

        return await self.db.transaction(work)

    async def finish(
        self, job_id: str, worker: str, state: str, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        """End ``job_id`` in ``state`` (succeeded, failed or cancelled) if ``worker`` still holds it."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"not a terminal state: {state}")
        now = _now()

        async def work(conn: AsyncConnection) -> bool:
            done = await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.lease_owner == worker, jobs.c.state == RUNNING)
                .values(
                    state=state,
                    result=result,
                    error=error,
                    progress=1.0 if state == SUCCEEDED else jobs.c.progress,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
            return done.rowcount == 1

        return await self.db.transaction(work)

    async def cancel(self, principal: str, job_id: str) -> StoredJob | None:
        """Cancel ``principal``'s job: a queued job becomes ``cancelled`` at once; a running one is flagged
        (its worker sees the flag at its next heartbeat and stops). A finished job is left as it is.
        None when the job is not ``principal``'s."""
        now = _now()

        async def work(conn: AsyncConnection) -> None:
            owned = sa.and_(jobs.c.id == job_id, jobs.c.principal == principal)
            await conn.execute(
                jobs.update()
                .where(owned, jobs.c.state == QUEUED)
                .values(state=CANCELLED, cancel_requested=True, finished_at=now, updated_at=now)
            )
            await conn.execute(
                jobs.update().where(owned, jobs.c.state == RUNNING).values(cancel_requested=True, updated_at=now)
            )

        await self.db.transaction(work)
        return await self.get(principal, job_id)

    async def cancel_requested(self, job_id: str) -> bool:
        async with self.db.connect() as conn:
            flag = (await conn.execute(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id))).scalar()
        return bool(flag)

    async def reap_expired(self) -> tuple[list[str], list[str]]:
        """Handle running jobs whose lease expired (their worker died or hung): requeue the idempotent
        ones with attempts left, fail the others with the reason. Returns (requeued ids, failed ids)."""
        now = _now()

        async def work(conn: AsyncConnection) -> tuple[list[str], list[str]]:
            expired = sa.and_(jobs.c.state == RUNNING, jobs.c.lease_expires_at < now)
            retryable = sa.and_(
                expired,
                jobs.c.idempotent.is_(True),
                jobs.c.attempts < jobs.c.max_attempts,
                jobs.c.cancel_requested.is_(False),
            )
            requeue_ids = list((await conn.execute(sa.select(jobs.c.id).where(retryable))).scalars())
            if requeue_ids:
                await conn.execute(
                    jobs.update()
                    .where(jobs.c.id.in_(requeue_ids), jobs.c.state == RUNNING)
                    .values(
                        state=QUEUED,
                        lease_owner=None,
                        lease_expires_at=None,
                        message="requeued: the worker running it stopped renewing its lease",
                        updated_at=now,
                    )
                )
            failed_ids = list((await conn.execute(sa.select(jobs.c.id).where(expired))).scalars())
            if failed_ids:
                await conn.execute(
                    jobs.update()
                    .where(jobs.c.id.in_(failed_ids), jobs.c.state == RUNNING)
                    .values(
                        state=FAILED,
                        error=(
                            "The worker running this job stopped (its lease expired without a heartbeat) "
                            "and the job is not retried: it is not idempotent, was cancelled, or used all "
                            "its attempts."
                        ),
                        lease_owner=None,
                        lease_expires_at=None,
                        finished_at=now,
                        updated_at=now,
                    )
                )
            return requeue_ids, failed_ids

        return await self.db.transaction(work)
