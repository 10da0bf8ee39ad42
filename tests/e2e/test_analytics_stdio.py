"""Every analytics tool through the real MCP client over stdio: a zero-configuration server (synthetic
prices, paper broker) and one reading GOOG from backtesting.py's test data (files source)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tests.cli import server_env
from tests.integration.test_backtesting_tools import write_goog_csv
from tests.results import error_of

ANALYTICS_TOOLS = {
    "train_forecaster",
    "evaluate_forecaster",
    "forecast",
    "list_models",
    "analyze_risk",
    "correlation_matrix",
    "stress_test",
    "risk_check_positions",
    "optimize_portfolio",
    "efficient_frontier",
    "rebalance_portfolio",
}
SMALL_MODEL = {"lookback": 10, "horizon": 3, "folds": 3, "bars": 600, "hidden_layers": [16], "max_iter": 40}


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def test_every_analytics_tool_over_stdio_on_synthetic_prices(tmp_path: Path) -> None:
    env = server_env(tmp_path / "d", NT_RISK_MAX_POSITION_WEIGHT="0.5", NT_RISK_MAX_ORDER_NOTIONAL="0")
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=120) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) >= ANALYTICS_TOOLS
        for name in ("rebalance_portfolio", "risk_check_positions"):
            assert listed[name].annotations.destructive_hint is True  # type: ignore[union-attr]
        trained = _ok(await client.call_tool("train_forecaster", {"symbol": "SPY", **SMALL_MODEL}))
        assert trained["data"]["synthetic"] is True and trained["evaluation"]["verdict"]
        evaluated = _ok(await client.call_tool("evaluate_forecaster", {"symbol": "SPY", **SMALL_MODEL}))
        assert evaluated["evaluation"]["table"] == trained["evaluation"]["table"]  # seeded: same data, same table
        made = _ok(await client.call_tool("forecast", {"symbol": "SPY", "horizon": 3}))
        assert made["model_reused"] is True and made["data"]["source"] == "synthetic" and len(made["path"]) == 3
        assert _ok(await client.call_tool("list_models", {}))["models"][0]["forecasts"] == 1
        weights = {"SPY": 0.4, "TLT": 0.35, "GLD": 0.25}
        risk = _ok(await client.call_tool("analyze_risk", {"weights": weights, "benchmark": "SPY"}))
        assert {v["method"] for v in risk["var"]} == {"historical", "normal", "cornish_fisher", "monte_carlo"}
        corr = _ok(await client.call_tool("correlation_matrix", {"symbols": list(weights)}))
        assert len(corr["matrix"]) == 3
        stress = _ok(
            await client.call_tool(
                "stress_test", {"weights": weights, "scenarios": [{"name": "-10%", "shocks": {"*": -0.1}}]}
            )
        )
        assert round(stress["scenarios"][0]["pnl_pct"], 9) == -0.1
        optimized = _ok(await client.call_tool("optimize_portfolio", {"symbols": list(weights), "objective": "hrp"}))
        assert abs(sum(optimized["weights"].values()) - 1) < 1e-9 and optimized["data"]["synthetic"] is True
        frontier = await client.call_tool("efficient_frontier", {"symbols": list(weights), "points": 5})
        image = next(c for c in frontier.content if c.type == "image")
        assert base64.b64decode(image.data).startswith(b"\x89PNG")  # type: ignore[union-attr]
        plan = _ok(await client.call_tool("rebalance_portfolio", {"weights": weights, "dry_run": False}))
        assert plan["orders"] and {o["state"] for o in plan["orders"]} == {"submitted"}
        checked = _ok(await client.call_tool("risk_check_positions", {"max_var_pct": 0.001}))
        assert checked["dry_run"] is True and checked["var_pct_of_equity_before"] > 0.001
        assert {o["reason"] for o in checked["orders"]} == {"var_cap"}
        bad = await client.call_tool("analyze_risk", {"weights": {"SPY": 0.7}})
        assert error_of(bad)["context"]["argument"] == "weights"


async def test_analytics_over_stdio_on_goog_files(tmp_path: Path) -> None:
    write_goog_csv(tmp_path / "market")
    env = server_env(tmp_path / "d", NT_DATA_DIR=str(tmp_path / "market"))
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=120) as client:
        trained = _ok(await client.call_tool("train_forecaster", {"symbol": "GOOG", **SMALL_MODEL}))
        assert trained["data"]["source"] == "files" and trained["data"]["synthetic"] is False
        assert set(trained["evaluation"]["scores"]) == {"model", "naive", "drift", "arima"}
        made = _ok(await client.call_tool("forecast", {"symbol": "GOOG", "horizon": 2, "confidence": 0.8}))
        assert made["model_id"] == trained["model_id"] and made["last_bar"].startswith("2013-03-01")
        risk = _ok(await client.call_tool("analyze_risk", {"quantities": {"GOOG": 10}, "lookback": 500}))
        assert risk["data"]["source"] == "files" and risk["portfolio_from"].startswith("quantities")
        missing = await client.call_tool("analyze_risk", {"weights": {"GOOG": 0.5, "AAPL": 0.5}})
        assert error_of(missing)["context"]["argument"] == "weights"  # no AAPL file
        too_long = await client.call_tool("train_forecaster", {"symbol": "GOOG", "lookback": 5, "horizon": 5})
        assert error_of(too_long)["context"]["argument"] == "horizon"
