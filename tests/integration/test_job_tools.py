"""Job tools through a real MCP client: start_job -> get_job gives the foreground result; cancel;
own jobs only; bad kind or argument names the argument. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.integration.test_backtesting_tools import write_goog_csv
from tests.results import error_of

SWEEP: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbol": "GOOG",
    "data_source": "files",
    "param_grid": {"fast": [5, 10, 15, 20]},
    "param_ranges": {"slow": {"start": 30, "stop": 120, "step": 30}},
    "top_n": 3,
    "commission": 0.001,
}


@pytest.fixture
async def stack(storage_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    write_goog_csv(tmp_path / "market")
    services = await Services.start(storage_settings.model_copy(update={"data_dir": tmp_path / "market"}))
    try:
        yield services
    finally:
        await services.close()


def _client(services: Services, subject: str = "alice") -> Client:
    return Client(NtMCPServer(Guard(services, Principal(subject, frozenset({"read", "backtest"}))), all_tools()))


async def _until_done(client: Client, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        result = await client.call_tool("get_job", {"job_id": job_id})
        assert not result.is_error, result.content
        body = result.structured_content
        assert body is not None
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("job did not finish")


async def test_start_job_result_equals_the_foreground_result(stack: Services) -> None:
    async with _client(stack) as client:
        foreground = await client.call_tool("optimize_strategy", SWEEP)
        started = await client.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP})
        assert not started.is_error, started.content
        body = started.structured_content
        assert body is not None and body["state"] in ("queued", "running") and body["result"] is None
        done = await _until_done(client, body["job_id"])
    assert done["state"] == "succeeded" and done["progress"] == 1.0 and done["eta_s"] == 0.0
    expected = dict(foreground.structured_content or {})
    got = dict(done["result"])
    expected.pop("elapsed_s"), got.pop("elapsed_s")
    assert got == expected


async def test_jobs_are_private_and_bad_arguments_are_named(stack: Services) -> None:
    async with _client(stack, "alice") as alice, _client(stack, "bob") as bob:
        started = await alice.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP})
        job_id = (started.structured_content or {})["job_id"]
        assert error_of(await bob.call_tool("get_job", {"job_id": job_id}))["code"] == "NOT_FOUND"
        assert (await bob.call_tool("list_jobs", {})).structured_content == {"jobs": []}
        mine = (await alice.call_tool("list_jobs", {})).structured_content or {}
        assert [job["job_id"] for job in mine["jobs"]] == [job_id]
        await _until_done(alice, job_id)

        bad_kind = error_of(await alice.call_tool("start_job", {"kind": "nope", "arguments": SWEEP}))
        assert bad_kind["code"] == "VALIDATION_ERROR"
        unknown = error_of(
            await alice.call_tool("start_job", {"kind": "optimize_strategy", "arguments": {**SWEEP, "colour": 1}})
        )
        assert unknown["code"] == "VALIDATION_ERROR" and "colour" in str(unknown)
        bad_value = error_of(
            await alice.call_tool("start_job", {"kind": "optimize_strategy", "arguments": {**SWEEP, "top_n": 0}})
        )
        assert bad_value["code"] == "VALIDATION_ERROR" and "top_n" in str(bad_value)
        assert len((await alice.call_tool("list_jobs", {})).structured_content["jobs"]) == 1  # type: ignore[index]


async def test_cancel_a_queued_job(stack: Services) -> None:
    await stack.jobs.stop()  # no worker in this process: the job stays queued
    async with _client(stack) as client:
        started = await client.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP})
        job_id = (started.structured_content or {})["job_id"]
        cancelled = await client.call_tool("cancel_job", {"job_id": job_id})
        assert (cancelled.structured_content or {})["state"] == "cancelled"
        assert (await _until_done(client, job_id))["state"] == "cancelled"


async def test_a_job_started_through_one_replica_is_read_through_another(
    stack: Services, storage_settings: Settings, tmp_path: Path
) -> None:
    other = await Services.start(storage_settings.model_copy(update={"data_dir": tmp_path / "market"}))
    try:
        async with _client(stack) as replica_a, _client(other) as replica_b:
            started = await replica_a.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP})
            job_id = (started.structured_content or {})["job_id"]
            done = await _until_done(replica_b, job_id)
    finally:
        await other.close()
    assert done["state"] == "succeeded" and done["result"]["symbol"] == "GOOG"
