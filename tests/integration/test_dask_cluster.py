"""Sweeps on a real local Dask cluster (a `dask scheduler` and two `dask worker` processes on loopback,
started here): the same universe sweep gives the same report on the cluster and in-process, and a job
whose worker is SIGKILLed mid-sweep still completes (the scheduler reschedules its tasks) with the same
result. Needs the [dask] extra (scripts/test installs it): a missing extra fails, not skips."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.conftest import make_settings
from tests.dask_cluster import LocalDaskCluster, start_cluster

pytestmark = pytest.mark.slow

# 3 symbols x ~8.5k hourly bars x 200 (fast, slow) pairs: a few seconds of sweep, ~30 Dask tasks
SWEEP: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbols": ["AAA", "BBB", "CCC"],
    "data_source": "synthetic",
    "timeframe": "1Hour",
    "start": "2022-06-01T00:00:00Z",
    "end": "2023-06-30T00:00:00Z",
    "param_ranges": {"fast": {"start": 5, "stop": 50, "step": 5}, "slow": {"start": 60, "stop": 250, "step": 10}},
    "top_n": 3,
    "commission": 0.0005,
}


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalDaskCluster]:
    started = await start_cluster(2, tmp_path_factory.mktemp("dask"))
    try:
        yield started
    finally:
        started.stop()


def _client(services: Services) -> Client:
    return Client(NtMCPServer(Guard(services, Principal("alice", frozenset({"read", "backtest"}))), all_tools()))


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("elapsed_s", "executor")}


async def _sweep(tmp_path: Path, dask_scheduler: str = "") -> dict[str, Any]:
    services = await Services.start(make_settings(tmp_path, dask_scheduler=dask_scheduler))
    try:
        async with _client(services) as client:
            return _ok(await client.call_tool("optimize_strategy", SWEEP))
    finally:
        await services.close()


@pytest.fixture(scope="module")
async def in_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return await _sweep(tmp_path_factory.mktemp("local"))


async def test_every_worker_has_the_kernels_compiled_before_the_first_task(
    cluster: LocalDaskCluster, tmp_path: Path
) -> None:
    from nt_mcp.services.sweeps import DaskSweeps, compiled_sweep_signatures

    sweeps = DaskSweeps(cluster.address)
    try:
        client = await sweeps.client()  # registers the warm-up plugin; no sweep has run on these workers
        compiled = await client.run(compiled_sweep_signatures)
    finally:
        await sweeps.close()
    assert len(compiled) == 2 and all(count >= 1 for count in compiled.values()), compiled


async def test_the_cluster_gives_the_in_process_report(
    cluster: LocalDaskCluster, in_process: dict[str, Any], tmp_path: Path
) -> None:
    on_cluster = await _sweep(tmp_path, cluster.address)
    assert on_cluster["executor"] == "dask" and in_process["executor"] == "in-process"
    assert _comparable(on_cluster) == _comparable(in_process)
    assert len(on_cluster["universe"]["per_symbol"]) == 3


async def test_a_job_survives_a_worker_killed_mid_sweep(
    cluster: LocalDaskCluster, in_process: dict[str, Any], tmp_path: Path
) -> None:
    services = await Services.start(
        make_settings(tmp_path, dask_scheduler=cluster.address, rate_limit_per_minute=100_000)
    )
    try:
        async with _client(services) as client:
            job_id = _ok(await client.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP}))[
                "job_id"
            ]
            deadline = time.monotonic() + 60
            killed = False
            while time.monotonic() < deadline:
                body = _ok(await client.call_tool("get_job", {"job_id": job_id}))
                if not killed and body["state"] == "running" and 0 < body["progress"] < 0.6:
                    cluster.kill_worker(1)  # mid-sweep: some tasks done, others queued or running on it
                    killed = True
                if body["state"] in ("succeeded", "failed", "cancelled"):
                    break
                await asyncio.sleep(0.1)
            assert killed, "the sweep ended before a worker could be killed mid-way"
            assert body["state"] == "succeeded", body["error"]
            assert _comparable(body["result"]) == _comparable(in_process)
    finally:
        await services.close()


async def test_an_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    from nt_mcp.services.sweeps import DaskSweeps
    from tests.dask_cluster import free_port
    from tests.results import error_of

    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    services = await Services.start(make_settings(tmp_path, dask_scheduler=address))
    services.sweeps = DaskSweeps(address, connect_timeout_s=1.0)
    try:
        async with _client(services) as client:
            error = error_of(await client.call_tool("optimize_strategy", {**SWEEP, "symbols": ["AAA"]}))
    finally:
        await services.close()
    assert error["code"] == "EXTERNAL_API_ERROR" and error["context"]["service"] == "dask"
    assert address in error["message"] and "NT_DASK_SCHEDULER" in error["message"]
