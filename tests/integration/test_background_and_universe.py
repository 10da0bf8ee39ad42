"""background=true on optimize_strategy and train_forecaster, the foreground budget that points to it,
and universe sweeps (symbols) -- through a real MCP client, on the files and synthetic data sources."""

from __future__ import annotations

import asyncio
import csv
import statistics
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
from tests.conftest import make_settings
from tests.integration.test_backtesting_tools import write_goog_csv
from tests.results import error_of

GRID: dict[str, Any] = {
    "strategy": "sma_crossover",
    "data_source": "files",
    "param_grid": {"fast": [5, 10, 15, 20]},
    "param_ranges": {"slow": {"start": 30, "stop": 120, "step": 30}},
    "commission": 0.001,
}
SYNTHETIC: dict[str, Any] = {
    "strategy": "sma_crossover",
    "data_source": "synthetic",
    "start": "2019-01-01T00:00:00Z",
    "end": "2023-12-31T00:00:00Z",
    "param_grid": {"fast": [5, 10, 20], "slow": [50, 100]},
    "top_n": 6,
}


def write_mirrored_csv(directory: Path, name: str) -> None:
    """``name``.csv: GOOG's bars with prices mirrored (200 - price), so trends reverse: a second symbol
    whose best parameters differ."""
    rows = list(csv.reader((directory / "GOOG.csv").open()))
    with (directory / f"{name}.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(rows[0])
        for ts, o, h, low, c, v in rows[1:]:
            writer.writerow([ts, 2000 - float(o), 2000 - float(low), 2000 - float(h), 2000 - float(c), v])


async def _stack(settings: Settings, tmp_path: Path) -> Services:
    write_goog_csv(tmp_path / "market")
    write_mirrored_csv(tmp_path / "market", "MIRR")
    return await Services.start(settings.model_copy(update={"data_dir": tmp_path / "market"}))


@pytest.fixture
async def stack(storage_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    services = await _stack(storage_settings, tmp_path)
    try:
        yield services
    finally:
        await services.close()


@pytest.fixture
async def sqlite_stack(tmp_path: Path) -> AsyncIterator[Services]:
    services = await _stack(make_settings(tmp_path), tmp_path)
    try:
        yield services
    finally:
        await services.close()


def _client(services: Services) -> Client:
    return Client(NtMCPServer(Guard(services, Principal("alice", frozenset({"read", "backtest"}))), all_tools()))


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def _until_done(client: Client, job_id: str) -> dict[str, Any]:
    for _ in range(1200):
        body = _ok(await client.call_tool("get_job", {"job_id": job_id}))
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("job did not finish")


def _without_timing(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "elapsed_s"}


async def test_background_optimize_answers_a_job_whose_result_is_the_foreground_report(stack: Services) -> None:
    async with _client(stack) as client:
        foreground = _ok(await client.call_tool("optimize_strategy", {**GRID, "symbol": "GOOG"}))
        queued = _ok(await client.call_tool("optimize_strategy", {**GRID, "symbol": "GOOG", "background": True}))
        assert queued["top"] is None and queued["train"] is None and queued["method"] is None
        job = queued["job"]
        assert job["kind"] == "optimize_strategy" and job["state"] in ("queued", "running")
        assert queued["combinations"] == foreground["combinations"] == 16
        done = await _until_done(client, job["job_id"])
    assert done["state"] == "succeeded", done["error"]
    assert _without_timing(done["result"]) == _without_timing(foreground)
    assert foreground["executor"] == "in-process" and foreground["job"] is None


async def test_background_forecaster_training_stores_the_model_a_foreground_call_would(
    sqlite_stack: Services,
) -> None:
    small = {"symbol": "GOOG", "data_source": "files", "lookback": 10, "horizon": 3, "folds": 3, "bars": 800,
             "hidden_layers": [16], "max_iter": 50}  # fmt: skip
    async with _client(sqlite_stack) as client:
        foreground = _ok(await client.call_tool("train_forecaster", small))
        queued = _ok(await client.call_tool("train_forecaster", {**small, "background": True}))
        assert queued["model_id"] is None and queued["job"]["kind"] == "train_forecaster"
        done = await _until_done(client, queued["job"]["job_id"])
        assert done["state"] == "succeeded", done["error"]
        result = done["result"]
        assert result["model_id"] and result["model_id"] != foreground["model_id"]
        assert result["evaluation"] == foreground["evaluation"]  # same data + seed = same model
        reuse = {"model_id": result["model_id"], "symbol": "GOOG", "horizon": 3, "data_source": "files"}
        assert _ok(await client.call_tool("forecast", reuse))["model_id"] == result["model_id"]
        refused = await client.call_tool("train_forecaster", {**small, "horizon": 20, "background": True})
        assert error_of(refused)["code"] == "VALIDATION_ERROR"  # horizon >= lookback: refused now, not in a job


async def test_over_the_foreground_budget_names_background_and_the_job_runs_it(tmp_path: Path) -> None:
    services = await _stack(make_settings(tmp_path, optimize_max_work=1_000), tmp_path)
    try:
        async with _client(services) as client:
            refused = error_of(await client.call_tool("optimize_strategy", {**GRID, "symbol": "GOOG"}))
            assert refused["code"] == "VALIDATION_ERROR"
            assert "background=true" in refused["message"] and "NT_JOB_MAX_WORK" in refused["message"]
            queued = _ok(await client.call_tool("optimize_strategy", {**GRID, "symbol": "GOOG", "background": True}))
            done = await _until_done(client, queued["job"]["job_id"])
            assert done["state"] == "succeeded", done["error"]
            assert len(done["result"]["top"]) == 5
            nested = await client.call_tool(
                "start_job", {"kind": "optimize_strategy", "arguments": {**GRID, "symbol": "GOOG", "background": True}}
            )
            assert error_of(nested)["context"]["argument"] == "arguments.background"
    finally:
        await services.close()


async def test_universe_reports_each_symbols_best_and_the_best_median_across(sqlite_stack: Services) -> None:
    async with _client(sqlite_stack) as client:
        report = _ok(await client.call_tool("optimize_strategy", {**GRID, "symbols": ["GOOG", "MIRR"], "top_n": 16}))
        singles = [_ok(await client.call_tool("optimize_strategy", {**GRID, "symbol": s, "top_n": 16})) for s in
                   ("GOOG", "MIRR")]  # fmt: skip
    universe = report["universe"]
    assert report["symbol"] is None and report["top"] is None and universe["symbols"] == ["GOOG", "MIRR"]
    for mine, single in zip(universe["per_symbol"], singles, strict=True):
        assert mine["top"] == single["top"] and mine["train"] == single["train"] and mine["data"] == single["data"]
    # the ranking across the universe, recomputed from each symbol's full table (top_n = every set)
    by_params: dict[str, list[float]] = {}
    for single in singles:
        for row in single["top"]:
            value = row["in_sample"]["objective"]
            by_params.setdefault(repr(sorted(row["params"].items())), []).append(
                float("-inf") if value is None else value
            )
    expected = sorted(by_params, key=lambda k: statistics.median(by_params[k]), reverse=True)
    got = [repr(sorted(row["params"].items())) for row in universe["top"]]
    assert got[0] == expected[0]
    medians = [row["in_sample_median"] for row in universe["top"]]
    assert medians == sorted(medians, reverse=True)
    assert universe["top"][0]["in_sample_median"] == pytest.approx(statistics.median(by_params[got[0]]))
    assert universe["top"][0]["symbols_defined"] == 2


async def test_universe_on_synthetic_data_as_a_job_equals_the_foreground_call(sqlite_stack: Services) -> None:
    arguments = {**SYNTHETIC, "symbols": ["AAA", "BBB", "CCC"]}
    async with _client(sqlite_stack) as client:
        foreground = _ok(await client.call_tool("optimize_strategy", arguments))
        started = _ok(await client.call_tool("start_job", {"kind": "optimize_strategy", "arguments": arguments}))
        done = await _until_done(client, started["job_id"])
    assert done["state"] == "succeeded", done["error"]
    assert _without_timing(done["result"]) == _without_timing(foreground)
    per_symbol = foreground["universe"]["per_symbol"]
    assert [p["symbol"] for p in per_symbol] == ["AAA", "BBB", "CCC"]
    assert len({repr(p["top"][0]["in_sample"]) for p in per_symbol}) == 3  # three different series


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"symbol": "GOOG", "symbols": ["GOOG"]}, "symbol"),
        ({}, "symbol"),
        ({"symbols": []}, "symbols"),
        ({"symbols": [f"S{i}" for i in range(501)]}, "symbols"),
        ({"symbols": ["GOOG", "not a ticker!"]}, "symbols.1"),
    ],
)
async def test_bad_symbol_lists_are_refused_naming_the_argument(
    sqlite_stack: Services, arguments: dict[str, Any], argument: str
) -> None:
    async with _client(sqlite_stack) as client:
        error = error_of(await client.call_tool("optimize_strategy", {**GRID, **arguments}))
    assert error["code"] == "VALIDATION_ERROR"
    assert error["context"]["argument"] == argument
