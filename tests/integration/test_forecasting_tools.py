"""The forecasting tools through the real MCP client (in memory), on SQLite and PostgreSQL, with GOOG from
backtesting.py's test data as the files source: the walk-forward table equals the domain's, models and
forecasts are stored and private, forecast reuses a fresh model, bad input names its argument."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.domain.forecast import ModelConfig, walk_forward
from nt_mcp.infra.schema import forecasts, neural_models
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.integration.test_backtesting_tools import goog_bars, write_goog_csv
from tests.results import error_of

SMALL = {"lookback": 10, "horizon": 3, "folds": 3, "bars": 800, "hidden_layers": [16], "max_iter": 50}


@pytest.fixture
async def stack(storage_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    write_goog_csv(tmp_path / "market")
    settings = storage_settings.model_copy(update={"data_dir": tmp_path / "market", "forecast_max_bars": 600})
    services = await Services.start(settings)
    try:
        yield services
    finally:
        await services.close()


def _client(services: Services, subject: str = "analyst", scopes: frozenset[str] | None = None) -> Client:
    principal = Principal(subject, scopes or frozenset({"read", "backtest"}))
    return Client(NtMCPServer(Guard(services, principal), all_tools()))


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def _count(services: Services, table: sa.Table) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_train_forecast_and_list_on_goog(stack: Services) -> None:
    stack.settings = stack.settings.model_copy(update={"forecast_max_bars": 5000})
    stack.forecasting.settings = stack.settings
    async with _client(stack) as client:
        trained = _ok(await client.call_tool("train_forecaster", {"symbol": "GOOG", **SMALL}))
        again = _ok(await client.call_tool("forecast", {"symbol": "GOOG", "horizon": 2, "confidence": 0.8}))
        listed = _ok(await client.call_tool("list_models", {}))
    close = goog_bars().close[-800:]
    config = ModelConfig(lags=10, horizon=3, hidden_layers=(16,), max_iter=50)
    expected, _ = walk_forward(np.asarray(close), config, folds=3, confidence=0.9)
    evaluation = trained["evaluation"]
    assert trained["data"]["source"] == "files" and trained["data"]["synthetic"] is False
    assert trained["data"]["bars"] == 800 and trained["params"]["lookback"] == 10
    assert [row["rmse_model"] for row in evaluation["table"]] == pytest.approx(
        [s.rmse for s in expected.scores["model"].steps], rel=1e-9
    )
    assert [row["rmse_arima"] for row in evaluation["table"]] == pytest.approx(
        [s.rmse for s in expected.scores["arima"].steps], rel=1e-9
    )
    assert evaluation["verdict"] == expected.verdict and evaluation["beats_naive"] == expected.beats_naive
    assert set(evaluation["scores"]) == {"model", "naive", "drift", "arima"}
    assert len(evaluation["folds"]) == 3 and "walk-forward" in evaluation["method"]
    # forecast reused the model just trained, from GOOG's last bar
    assert again["model_reused"] is True and again["model_id"] == trained["model_id"]
    assert again["last_close"] == pytest.approx(float(close[-1]))
    assert [p["step"] for p in again["path"]] == [1, 2]
    assert all(p["lower"] < p["price"] < p["upper"] for p in again["path"])
    assert again["model_verdict"] == evaluation["verdict"]
    assert [m["model_id"] for m in listed["models"]] == [trained["model_id"]]
    assert listed["models"][0]["forecasts"] == 1
    assert await _count(stack, neural_models) == 1 and await _count(stack, forecasts) == 1


async def test_forecast_trains_when_no_fresh_model_and_models_are_private(stack: Services) -> None:
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with _client(stack) as client:
        made = await client.call_tool(
            "forecast",
            {"symbol": "GOOG", "horizon": 5, "timeframe": "1Day"},
            progress_callback=on_progress,
        )
        body = _ok(made)
    assert body["model_reused"] is False and body["data"]["source"] == "files"
    assert len(body["path"]) == 5 and progress  # training sent progress notifications
    async with _client(stack, subject="someone-else") as other:
        assert _ok(await other.call_tool("list_models", {}))["models"] == []
        hidden = await other.call_tool("forecast", {"symbol": "GOOG", "model_id": body["model_id"]})
        assert error_of(hidden)["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"symbol": "GOOG", "lookback": 5, "horizon": 5}, "horizon"),
        ({"symbol": "GOOG", "confidence": 1.0}, "confidence"),
        ({"symbol": "GOOG", "confidence": 0}, "confidence"),
        ({"symbol": "NOPE"}, "symbol"),
        ({"symbol": "GOOG", "bars": 100, "lookback": 60, "folds": 5}, "bars"),
        ({"symbol": "GOOG", "bars": 5000}, "bars"),  # above NT_FORECAST_MAX_BARS (600 here)
        ({"symbol": "GOOG", "hidden_layers": []}, "hidden_layers"),
        ({"symbol": "GOOG", "bars": 600, "hidden_layers": [256, 256, 256, 256], "max_iter": 1000}, "max_iter"),
    ],
)
async def test_bad_input_names_the_argument_and_stores_nothing(
    stack: Services, arguments: dict[str, Any], argument: str
) -> None:
    async with _client(stack) as client:
        result = await client.call_tool("train_forecaster", arguments)
    error = error_of(result)
    assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"].startswith(argument), error
    assert await _count(stack, neural_models) == 0


async def test_training_needs_the_backtest_scope(stack: Services) -> None:
    async with _client(stack, scopes=frozenset({"read"})) as client:
        refused = await client.call_tool("train_forecaster", {"symbol": "GOOG", **SMALL})
        assert error_of(refused)["code"] == "FORBIDDEN"
        assert not (await client.call_tool("list_models", {})).is_error


async def test_a_forecast_as_of_a_past_end_never_uses_a_model_that_saw_later_bars(stack: Services) -> None:
    stack.settings = stack.settings.model_copy(update={"forecast_max_bars": 5000})
    stack.forecasting.settings = stack.settings
    async with _client(stack) as client:
        trained = _ok(await client.call_tool("train_forecaster", {"symbol": "GOOG", **SMALL}))
        refused = await client.call_tool(
            "forecast", {"symbol": "GOOG", "horizon": 2, "end": "2010-01-04", "model_id": trained["model_id"]}
        )
        past = _ok(await client.call_tool("forecast", {"symbol": "GOOG", "horizon": 2, "end": "2010-01-04"}))
    assert error_of(refused)["context"]["argument"] == "model_id"
    assert past["model_reused"] is False and past["model_id"] != trained["model_id"]
    assert past["last_bar"].startswith("2010-01-04") and past["data"]["last_timestamp"].startswith("2010-01-04")
