"""Job tools: long work (parameter sweeps) started now, read later from any replica.

start_job(kind, arguments) queues the work and answers at once with the job id; get_job(job_id) gives
state (queued, running, succeeded, failed, cancelled), progress (0..1), ETA and, when succeeded, the
result (the same output as the foreground tool); cancel_job; list_jobs. A principal sees only its own
jobs. The job is executed by `nt_mcp.services.jobs.JobRunner` in this or another replica.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from nt_mcp.errors import NotFoundError, ValidationError
from nt_mcp.infra.jobs import StoredJob
from nt_mcp.services.jobs import JobKind, Report, StopCheck, eta_seconds
from nt_mcp.tools.registry import Principal, ToolContext, tool

if TYPE_CHECKING:
    from nt_mcp.tools.services import Services

JobKindName = Literal["optimize_strategy", "train_forecaster"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobStatus(BaseModel):
    job_id: str
    kind: str
    state: JobState
    progress: float = Field(description="Share of the work done, 0..1.")
    message: str | None = None
    eta_s: float | None = Field(None, description="Seconds left: elapsed / progress x (1 - progress).")
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    result: dict[str, Any] | None = Field(None, description="When succeeded: the foreground tool's output.")


class JobList(BaseModel):
    jobs: list[JobStatus]


def job_status(job: StoredJob, *, with_result: bool = True) -> JobStatus:
    return JobStatus(
        job_id=job.id,
        kind=job.kind,
        state=job.state,
        progress=round(job.progress, 4),
        message=job.message,
        eta_s=None if (eta := eta_seconds(job)) is None else round(eta, 1),
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        result=job.result if with_result else None,
    )


def _kind_tools() -> dict[str, tuple[Any, bool]]:
    """Each job kind: the foreground tool it runs, and whether its work is idempotent (a job whose worker
    died is then requeued; a forecaster stores a model, so its job is failed with the reason instead)."""
    from nt_mcp.tools.forecasting import train_forecaster
    from nt_mcp.tools.optimization import optimize_strategy

    return {"optimize_strategy": (optimize_strategy, True), "train_forecaster": (train_forecaster, False)}


def _kind_handler(kind: str) -> Any:
    spec = _kind_tools().get(kind)
    if spec is None:
        raise ValidationError(f"unknown job kind {kind!r}; known: {', '.join(_kind_tools())}", argument="kind")
    return spec[0].handler


def validate_job_arguments(kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` checked against the foreground tool's own argument types (the same schema an MCP
    client sees), as typed values; VALIDATION_ERROR names ``arguments.<name>``."""
    handler = _kind_handler(kind)
    parameters = list(inspect.signature(handler, eval_str=True).parameters.values())[1:]
    if "background" in arguments:
        raise ValidationError(
            f"background is not an argument of a job: start_job already runs {kind} in the background",
            argument="arguments.background",
        )
    parameters = [p for p in parameters if p.name != "background"]
    unknown = sorted(set(arguments) - {p.name for p in parameters})
    if unknown:
        raise ValidationError(f"{unknown[0]!r} is not an argument of {kind}", argument=f"arguments.{unknown[0]}")
    fields: dict[str, Any] = {
        p.name: (p.annotation, ... if p.default is inspect.Parameter.empty else p.default) for p in parameters
    }
    model = create_model(f"{kind}_arguments", **fields)
    try:
        validated = model.model_validate(arguments)
    except PydanticValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "arguments"
        raise ValidationError(f"{name}: {first['msg']}", argument=f"arguments.{name}") from None
    return {name: getattr(validated, name) for name in fields if name in arguments}


@tool(output=JobStatus, scope="backtest", title="Start a background job")
async def start_job(
    ctx: ToolContext,
    kind: Annotated[JobKindName, Field(description="The tool to run in the background.")],
    arguments: Annotated[dict[str, Any], Field(description="That tool's arguments, as for a foreground call.")],
) -> JobStatus:
    """Queue long work and answer at once with its job id (state 'queued'); poll get_job(job_id) for
    progress, ETA and the result (the same output the foreground tool gives). Kinds 'optimize_strategy'
    and 'train_forecaster' need the backtest scope (the same as `background=true` on those tools).
    Argument names and types are checked now (VALIDATION_ERROR naming arguments.<name>); the rest when
    the job runs (a job's work budget is NT_JOB_MAX_WORK). Sweeps are idempotent: a job whose worker
    died is requeued (at most 3 attempts); a forecaster training whose worker died is failed with the
    reason."""
    return await start_background(ctx, kind, arguments)


async def start_background(ctx: ToolContext, kind: str, arguments: dict[str, Any]) -> JobStatus:
    """Queue ``kind`` with ``arguments`` (checked as start_job checks them) for the calling principal."""
    validate_job_arguments(kind, arguments)
    stored = to_jsonable_python(arguments)
    job = await ctx.services.jobs.submit(job_id=None, principal=ctx.principal.subject, kind=kind, arguments=stored)
    return job_status(job)


@tool(output=JobStatus, scope="read", title="Get a job", read_only=True)
async def get_job(
    ctx: ToolContext, job_id: Annotated[str, Field(min_length=1, max_length=64, description="From start_job.")]
) -> JobStatus:
    """A job you started: state, progress (0..1), ETA in seconds (elapsed / progress x (1 - progress)),
    and when succeeded the result. Another principal's job answers NOT_FOUND."""
    job = await ctx.services.jobs.store.get(ctx.principal.subject, job_id)
    if job is None:
        raise NotFoundError(f"No job {job_id!r} of yours.", context={"argument": "job_id"})
    return job_status(job)


@tool(output=JobStatus, scope="backtest", title="Cancel a job", idempotent=True)
async def cancel_job(
    ctx: ToolContext, job_id: Annotated[str, Field(min_length=1, max_length=64, description="From start_job.")]
) -> JobStatus:
    """Cancel a job you started: a queued job is cancelled at once; a running one stops at its next
    progress step (state 'running' until then). A finished job is returned unchanged."""
    job = await ctx.services.jobs.store.cancel(ctx.principal.subject, job_id)
    if job is None:
        raise NotFoundError(f"No job {job_id!r} of yours.", context={"argument": "job_id"})
    return job_status(job)


@tool(output=JobList, scope="read", title="List your jobs", read_only=True)
async def list_jobs(
    ctx: ToolContext,
    state: Annotated[JobState | None, Field(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many, newest first.")] = 50,
) -> JobList:
    """Your jobs, newest first (results omitted: read one with get_job)."""
    jobs = await ctx.services.jobs.store.list_for(ctx.principal.subject, state=state, limit=limit)
    return JobList(jobs=[job_status(job, with_result=False) for job in jobs])


TOOLS = [start_job, get_job, cancel_job, list_jobs]


@dataclass
class _JobToolContext(ToolContext):
    """A ToolContext whose progress goes to the job row instead of an MCP request."""

    job_report: Report | None = None

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.job_report is not None and total:
            await self.job_report(int(progress), int(total), message or "")


def build_job_kinds(services: Services) -> dict[str, JobKind]:
    """The kinds start_job accepts, each running its foreground tool's handler for the job's principal."""

    def runner(kind: str, spec: Any) -> Any:
        async def run(job: StoredJob, report: Report, should_stop: StopCheck) -> dict[str, Any]:
            principal = Principal(subject=job.principal, scopes=frozenset({"read", "backtest"}))
            ctx = _JobToolContext(
                services=services, principal=principal, correlation_id=job.id, in_job=True, job_report=report
            )
            output = await spec.handler(ctx, **validate_job_arguments(job.kind, job.arguments))
            if not isinstance(output, BaseModel):
                raise TypeError(f"{kind} answered without its report")
            return output.model_dump(mode="json")

        return run

    return {
        kind: JobKind(kind, runner(kind, spec), idempotent=idempotent, max_attempts=3 if idempotent else 1)
        for kind, (spec, idempotent) in _kind_tools().items()
    }
