"""The backtesting tools through the real MCP client (in memory), on SQLite and PostgreSQL: results equal
the engine's, the PNG is a PNG, stored backtests are private, progress arrives, bad input stores nothing."""

from __future__ import annotations

import asyncio
import base64
import csv
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backtesting.test import GOOG
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import run_strategy
from nt_mcp.server.app import NtMCPServer, build_server
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools import optimization
from nt_mcp.tools.charts import equity_curve_png
from nt_mcp.tools.registry import Principal, ToolContext
from nt_mcp.tools.services import Services
from tests.results import error_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def goog_bars() -> Bars:
    return Bars(
        GOOG.index.values,
        GOOG.Open.values,
        GOOG.High.values,
        GOOG.Low.values,
        GOOG.Close.values,
        GOOG.Volume.values.astype(float),
    )


def write_goog_csv(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "GOOG.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Timestamp", "Open", "High", "Low", "Close", "Volume"])
        for ts, row in GOOG.iterrows():
            prices = (repr(float(row[c])) for c in ("Open", "High", "Low", "Close"))
            writer.writerow([ts.isoformat(), *prices, int(row.Volume)])
    return path


@pytest.fixture
async def stack(storage_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    """Services on each storage backend, with GOOG.csv in NT_DATA_DIR."""
    write_goog_csv(tmp_path / "market")
    services = await Services.start(storage_settings.model_copy(update={"data_dir": tmp_path / "market"}))
    try:
        yield services
    finally:
        await services.close()


def _client(services: Services, subject: str = "local-operator") -> Client:
    principal = Principal(subject, frozenset({"read", "backtest"}))
    return Client(NtMCPServer(Guard(services, principal), all_tools()))


def _error(result: Any) -> dict[str, Any]:
    return error_of(result)


async def test_strategies_are_listed_with_bounds_and_rules(stack: Services) -> None:
    async with Client(build_server(stack)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        listed = (await client.call_tool("list_strategies", {})).structured_content
        info = (await client.call_tool("get_strategy_info", {"strategy": "sma_crossover"})).structured_content
        unknown = await client.call_tool("get_strategy_info", {"strategy": "astrology"})
    assert tools["run_backtest"].annotations.read_only_hint is False
    assert tools["optimize_strategy"].annotations.read_only_hint is True  # computes, stores nothing
    assert tools["list_backtests"].annotations.read_only_hint is True
    names = {s["name"] for s in listed["strategies"]}
    assert names == {"sma_crossover", "momentum", "mean_reversion", "breakout", "rsi_reversion", "neural_forecast"}
    fast = next(p for p in info["parameters"] if p["name"] == "fast")
    assert fast == {
        "name": "fast",
        "type": "int",
        "default": 10,
        "minimum": 1,
        "maximum": 10_000,
        "description": "bars in the fast average",
    }
    assert "next bar" in info["rule"] or "bar i+1" in info["rule"]
    error = _error(unknown)
    assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == "strategy"


async def test_run_backtest_on_goog_file_equals_the_engine_and_is_stored(stack: Services) -> None:
    ours = run_strategy(goog_bars(), "sma_crossover", {"fast": 10, "slow": 30}, BacktestConfig(commission_pct=0.001))
    async with _client(stack) as client:
        result = await client.call_tool(
            "run_backtest",
            {
                "strategy": "sma_crossover",
                "symbol": "GOOG",
                "data_source": "files",
                "params": {"fast": 10, "slow": 30},
                "commission": 0.001,
            },
        )
        assert not result.is_error, result.content
        body = result.structured_content
        page1 = await client.call_tool("get_backtest", {"backtest_id": body["backtest_id"], "trades_limit": 5})
        page2 = await client.call_tool(
            "get_backtest", {"backtest_id": body["backtest_id"], "trades_offset": 5, "trades_limit": 1000}
        )
        listed = (await client.call_tool("list_backtests", {})).structured_content

    m = body["metrics"]
    assert m["final_equity"] == ours.metrics.final_equity
    assert body["trade_count"] == len(ours.trades) == m["num_trades"] + body["open_trades"]
    assert m["num_trades"] == ours.metrics.n_trades
    for name in ("sharpe", "sortino", "cagr", "max_drawdown", "total_return", "buy_and_hold_return", "win_rate"):
        assert m[name] == getattr(ours.metrics, name), name
    first, last = ours.trades[0], ours.trades[len(ours.trades) - 1]
    head = body["first_trade"]
    assert head["entry_bar"] == first.entry_bar and head["entry_price"] == first.entry_price
    assert head["size"] == first.size and head["exit_price"] == first.exit_price
    assert body["last_trade"]["entry_bar"] == last.entry_bar and body["last_trade"]["pnl"] == last.pnl
    assert body["open_trades"] == (1 if last.exit_bar is None else 0)
    assert body["params"] == {"fast": 10, "slow": 30, "allow_short": False}
    assert body["settings"]["commission"] == 0.001

    data = body["data"]
    assert data["source"] == "files" and data["synthetic"] is False
    assert data["bars"] == len(GOOG)
    assert data["first_timestamp"].startswith(GOOG.index[0].strftime("%Y-%m-%d"))
    assert data["last_timestamp"].startswith(GOOG.index[-1].strftime("%Y-%m-%d"))
    assert "NEXT bar's open" in body["conventions"] and "both legs" in body["conventions"]
    assert m["periods_per_year"] == 252 and "periods_per_year" in body["conventions"]
    assert "trade returns" in body["conventions"]

    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    png = base64.b64decode(images[0].data)
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (800, 350)
    assert len(png) < 200_000

    stored1, stored2 = page1.structured_content, page2.structured_content
    assert stored1["trade_count"] == len(ours.trades)
    assert len(stored1["trades"]) == 5 and stored1["next_trades_offset"] == 5
    assert stored2["next_trades_offset"] is None
    all_trades = stored1["trades"] + stored2["trades"]
    assert [(t["entry_bar"], t["exit_bar"], t["entry_price"], t["size"]) for t in all_trades] == [
        (t.entry_bar, t.exit_bar, t.entry_price, t.size) for t in ours.trades
    ]
    assert stored1["metrics"] == m and stored1["data"] == data
    assert listed["backtests"][0]["backtest_id"] == body["backtest_id"]
    assert listed["backtests"][0]["final_equity"] == ours.metrics.final_equity


async def test_backtests_are_private_to_their_principal(stack: Services) -> None:
    async with _client(stack, "alice") as alice:
        goog = {"symbol": "GOOG", "data_source": "files"}
        ran = await alice.call_tool("run_backtest", {"strategy": "momentum", **goog})
        backtest_id = ran.structured_content["backtest_id"]
        second = await alice.call_tool("run_backtest", {"strategy": "breakout", **goog})
        mine = (await alice.call_tool("list_backtests", {"limit": 10})).structured_content
    async with _client(stack, "bob") as bob:
        theirs = await bob.call_tool("get_backtest", {"backtest_id": backtest_id})
        bobs = (await bob.call_tool("list_backtests", {})).structured_content
    assert _error(theirs)["code"] == "NOT_FOUND"
    assert bobs == {"principal": "bob", "backtests": []}
    assert [b["backtest_id"] for b in mine["backtests"]] == [second.structured_content["backtest_id"], backtest_id]


async def test_synthetic_data_is_labelled_synthetic(stack: Services) -> None:
    async with _client(stack) as client:
        result = await client.call_tool(
            "run_backtest",
            {
                "strategy": "mean_reversion",
                "symbol": "DEMO",
                "data_source": "synthetic",
                "start": "2023-01-01",
                "end": "2023-12-31",
            },
        )
        again = await client.call_tool(
            "run_backtest",
            {
                "strategy": "mean_reversion",
                "symbol": "DEMO",
                "data_source": "synthetic",
                "start": "2023-01-01",
                "end": "2023-12-31",
            },
        )
    data = result.structured_content["data"]
    assert data["source"] == "synthetic" and data["synthetic"] is True and "SYNTHETIC" in data["detail"]
    assert "100 on 2020-01-01" in data["detail"] and "start price" not in data["detail"]
    assert data["bars"] == 260  # weekdays of 2023
    assert result.structured_content["metrics"]["periods_per_year"] == 252  # weekday daily bars
    assert result.structured_content["metrics"] == again.structured_content["metrics"]  # deterministic


BAD_RUNS = [
    ({"strategy": "astrology"}, "strategy"),
    ({"params": {"fast": 30, "slow": 10}}, "params.slow"),
    ({"params": {"fast": 10, "slow": 10}}, "params.slow"),
    ({"params": {"speed": 3}}, "params.speed"),
    ({"start": "2012-01-01", "end": "2011-01-01"}, "start"),
    ({"start": "2030-01-01", "end": "2031-01-01"}, "start"),
    ({"symbol": "NOPE"}, "symbol"),
    ({"data_source": "alpaca"}, "data_source"),
    ({"commission": 0.5}, "commission"),
    ({"sizing": "fraction", "size": 2.0}, "size"),
    ({"data_source": "synthetic", "timeframe": "1Min", "start": "2000-01-01", "end": "2025-01-01"}, "start"),
]


@pytest.mark.parametrize(("overrides", "argument"), BAD_RUNS, ids=[a for _, a in BAD_RUNS])
async def test_bad_input_names_the_argument_and_stores_nothing(
    stack: Services, overrides: dict[str, Any], argument: str
) -> None:
    before = await stack.backtests.count()
    arguments = {"strategy": "sma_crossover", "symbol": "GOOG", "data_source": "files"} | overrides
    async with _client(stack) as client:
        result = await client.call_tool("run_backtest", arguments)
    error = _error(result)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["context"]["argument"] == argument, error
    assert await stack.backtests.count() == before
    if argument == "data_source":
        assert "NT_ALPACA_API_KEY" in error["message"] and "NT_ALPACA_SECRET_KEY" in error["message"]


async def test_optimize_sma_grid_reports_train_and_test_with_progress(stack: Services) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    before = await stack.backtests.count()
    async with _client(stack) as client:
        result = await client.call_tool(
            "optimize_strategy",
            {
                "strategy": "sma_crossover",
                "symbol": "GOOG",
                "data_source": "files",
                "param_grid": {"fast": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]},
                "param_ranges": {"slow": {"start": 20, "stop": 200, "step": 20}},
                "objective": "sharpe",
                "train_fraction": 0.7,
                "top_n": 3,
                "commission": 0.001,
            },
            progress_callback=on_progress,
        )
    assert not result.is_error, result.content
    body = result.structured_content
    assert body["method"] == "sma_sweep"
    assert body["combinations"] == 100 and body["evaluated"] + body["skipped_invalid"] == 100
    assert body["skipped_invalid"] == 10  # (20,20), (25..35,20), (40,20), (40,40), (45,20), (45,40), (50,20), (50,40)
    cut = int(len(GOOG) * 0.7)
    assert body["train"]["bars"] == cut and body["test"]["bars"] == len(GOOG) - cut
    assert len(body["top"]) == 3
    sharpes = [t["in_sample"]["objective"] for t in body["top"]]
    assert sharpes == sorted(sharpes, reverse=True)
    bars, cfg = goog_bars(), BacktestConfig(commission_pct=0.001)
    best = body["top"][0]
    in_sample = run_strategy(bars.slice(0, cut), "sma_crossover", best["params"], cfg).metrics
    out_sample = run_strategy(bars.slice(cut, len(bars)), "sma_crossover", best["params"], cfg).metrics
    assert best["in_sample"]["sharpe"] == pytest.approx(in_sample.sharpe, rel=1e-12)
    assert best["out_of_sample"]["final_equity"] == pytest.approx(out_sample.final_equity, rel=1e-12)
    assert best["out_of_sample"]["num_trades"] == out_sample.n_trades
    assert len(progress) >= 3 and progress[-1][0] == progress[-1][1] == body["evaluated"]
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert await stack.backtests.count() == before


async def test_optimize_loop_path_for_other_strategies(stack: Services) -> None:
    async with _client(stack) as client:
        result = await client.call_tool(
            "optimize_strategy",
            {
                "strategy": "rsi_reversion",
                "symbol": "GOOG",
                "data_source": "files",
                "param_grid": {"period": [7, 14, 21]},
                "objective": "total_return",
                "top_n": 2,
            },
        )
    body = result.structured_content
    assert not result.is_error, body
    assert body["method"] == "loop" and body["evaluated"] == 3 and len(body["top"]) == 2
    bars = goog_bars()
    cut = int(len(bars) * 0.7)
    best = body["top"][0]
    expected = run_strategy(bars.slice(0, cut), "rsi_reversion", best["params"], BacktestConfig()).metrics
    assert best["in_sample"]["total_return"] == pytest.approx(expected.total_return, rel=1e-12)


BAD_OPTIMISATIONS = [
    ({"param_grid": {"fast": list(range(1, 101)), "slow": list(range(2, 102))}}, "param_grid"),
    ({"param_ranges": {"fast": {"start": 1, "stop": 5000, "step": 1}}}, "param_grid"),
    ({"param_grid": {"speed": [1, 2]}}, "param_grid"),
    ({"param_grid": {"fast": [30], "slow": [10, 20]}}, "param_grid"),
    ({"param_grid": {"fast": [1.5]}}, "param_grid"),
    ({}, "param_grid"),
    ({"param_grid": {"fast": [5]}, "strategy": "nope"}, "strategy"),
    ({"param_grid": {"fast": [5]}, "start": "2012-01-01", "end": "2010-01-01"}, "start"),
    ({"param_grid": {"fast": [5]}, "train_fraction": 0.99}, "train_fraction"),
]


@pytest.mark.parametrize(("overrides", "argument"), BAD_OPTIMISATIONS)
async def test_bad_optimisation_names_the_argument(stack: Services, overrides: dict[str, Any], argument: str) -> None:
    arguments = {"strategy": "sma_crossover", "symbol": "GOOG", "data_source": "files"} | overrides
    async with _client(stack) as client:
        result = await client.call_tool("optimize_strategy", arguments)
    error = _error(result)
    assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == argument, error
    if "range(1, 101)" in repr(overrides) or len(repr(overrides)) > 300:
        assert "2,000" in error["message"] or "2000" in error["message"]


class _RecordingContext:
    """Stands in for the SDK's request context: records progress, signals the first one."""

    def __init__(self) -> None:
        self.events: list[float] = []
        self.first = asyncio.Event()

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.events.append(progress)
        if progress > 0:
            self.first.set()


async def test_optimize_stops_between_chunks_when_cancelled(stack: Services) -> None:
    recorder = _RecordingContext()
    ctx = ToolContext(stack, Principal("tester", frozenset({"backtest"})), "cid", recorder)  # type: ignore[arg-type]
    task = asyncio.create_task(
        optimization.optimize_strategy.handler(
            ctx,
            strategy="mean_reversion",
            symbol="DEMO",
            data_source="synthetic",
            timeframe="1Min",
            start=datetime(2024, 1, 1, tzinfo=UTC),
            end=datetime(2024, 3, 1, tzinfo=UTC),
            param_grid={"window": list(range(10, 210, 10)), "entry": [1.5, 2.0, 2.5, 3.0, 3.5]},
            params=None,
        )
    )
    await asyncio.wait_for(recorder.first.wait(), timeout=60)
    seen = len(recorder.events)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert len(recorder.events) == seen  # no chunk ran after the cancel
    assert recorder.events[-1] < 100  # it did not finish


def test_chart_buckets_long_curves() -> None:
    n = 50_000
    ts = (np.arange(n, dtype=np.int64) * 60 + 1_700_000_000) * 10**9
    equity = 10_000 + np.cumsum(np.random.default_rng(1).standard_normal(n))
    png = equity_curve_png(ts, equity, equity * 1.01, "long")
    assert png[:8] == PNG_SIGNATURE and struct.unpack(">II", png[16:24]) == (800, 350)
