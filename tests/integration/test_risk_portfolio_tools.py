"""Risk and portfolio tools through the real MCP client (in memory), on SQLite and PostgreSQL, zero
configuration (paper broker, synthetic prices): the numbers equal the domain's and the reference
implementations' on the same bars, orders go through the order router only when asked, bad input names
its argument and changes nothing."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Any

import empyrical
import numpy as np
import pytest
import sqlalchemy as sa
from mcp import Client
from skfolio import measures

from nt_mcp.domain import portfolio, risk
from nt_mcp.domain.risk_limits import RiskLimits
from nt_mcp.infra.schema import orders
from nt_mcp.server.app import NtMCPServer
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.services.market_series import load_series
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.fakes import SetPrices, use_paper_prices
from tests.results import error_of

END = "2026-06-30"
SYMBOLS = ["SPY", "QQQ", "TLT", "GLD"]


def _client(services: Services, scopes: frozenset[str] = frozenset({"read", "backtest", "trade"})) -> Client:
    return Client(NtMCPServer(Guard(services, Principal("risk-tester", scopes)), all_tools()))


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def _order_rows(services: Services) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(orders))).scalar_one())


async def _returns(services: Services, symbols: list[str], bars: int) -> np.ndarray:
    series = await load_series(
        services.market_hub.get("synthetic"), symbols, "1Day", bars, datetime.fromisoformat(END + "T00:00:00+00:00")
    )
    return risk.simple_returns(series.closes)


async def test_analyze_risk_matches_the_reference_implementations(services: Services) -> None:
    weights = {"SPY": 0.5, "QQQ": 0.3, "TLT": 0.2}
    async with _client(services) as client:
        body = _ok(
            await client.call_tool(
                "analyze_risk",
                {"weights": weights, "benchmark": "GLD", "lookback": 300, "confidence": 0.99, "end": END,
                 "portfolio_value": 250_000},
            )
        )  # fmt: skip
    r = await _returns(services, ["SPY", "QQQ", "TLT", "GLD"], 301)
    r_p = r[:, :3] @ np.array([0.5, 0.3, 0.2])
    by_method = {v["method"]: v for v in body["var"]}
    assert set(by_method) == {"historical", "normal", "cornish_fisher", "monte_carlo"}
    historical = by_method["historical"]
    assert historical["var_pct"] == pytest.approx(measures.value_at_risk(r_p, beta=0.99), rel=1e-12)
    assert historical["cvar_pct"] == pytest.approx(measures.cvar(r_p, beta=0.99), rel=1e-12)
    assert historical["var_amount"] == pytest.approx(historical["var_pct"] * 250_000)
    assert body["annual_volatility"] == pytest.approx(empyrical.annual_volatility(r_p), rel=1e-12)
    assert body["max_drawdown"] == pytest.approx(empyrical.max_drawdown(r_p), rel=1e-12)
    assert body["benchmark"]["beta"] == pytest.approx(empyrical.beta(r_p, r[:, 3]), rel=1e-9)
    assert all(v["cvar_pct"] >= v["var_pct"] > 0 for v in body["var"])
    assert body["data"]["synthetic"] is True and body["data"]["bars"] == 301
    assert "POSITIVE losses" in body["conventions"]


async def test_analyze_risk_of_positions_and_bad_input(services: Services) -> None:
    async with _client(services) as client:
        _ok(await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 20}))
        _ok(await client.call_tool("place_order", {"symbol": "MSFT", "side": "buy", "qty": 10}))
        held = _ok(await client.call_tool("analyze_risk", {"methods": ["historical"], "lookback": 100}))
        assert held["portfolio_from"] == "positions"
        assert {h["symbol"] for h in held["holdings"]} == {"AAPL", "MSFT"}
        assert held["data"]["source"] == "synthetic"
        for args, argument in [
            ({"weights": {"SPY": 0.5, "QQQ": 0.4}}, "weights"),
            ({"weights": {"SPY": 1.0}, "confidence": 1.5}, "confidence"),
            ({"weights": {"SPY": 1.0}, "confidence": 0}, "confidence"),
            ({"weights": {"SPY": 1.0}, "quantities": {"SPY": 1}}, "weights"),
            ({"weights": {"S P Y": 1.0}}, "weights"),
            ({"weights": {"SPY": 1.0}, "data_source": "files"}, "data_source"),
            ({"quantities": {"SPY": 1e306, "QQQ": -1e306}}, "quantities"),  # exposures beyond a float: not NaN
        ]:
            error = error_of(await client.call_tool("analyze_risk", args))
            assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"].startswith(argument), args


async def test_correlation_matrix_and_stress_test(services: Services) -> None:
    scenarios = [{"name": "equities -20%", "shocks": {"SPY": -0.2}}, {"name": "all -5%", "shocks": {"*": -0.05}}]
    async with _client(services) as client:
        corr = _ok(await client.call_tool("correlation_matrix", {"symbols": SYMBOLS, "lookback": 120, "end": END}))
        stress = _ok(
            await client.call_tool(
                "stress_test", {"quantities": {"SPY": 10, "TLT": -5}, "end": END, "scenarios": scenarios}
            )
        )
    r = await _returns(services, SYMBOLS, 121)
    np.testing.assert_allclose(np.array(corr["matrix"]), np.corrcoef(r, rowvar=False), rtol=1e-12)
    assert corr["symbols"] == SYMBOLS
    spy, tlt = (h["exposure"] for h in stress["holdings"])
    assert spy > 0 > tlt
    first, second = stress["scenarios"]
    assert first["pnl"] == pytest.approx(-0.2 * spy) and first["shocks"]["TLT"] == 0
    assert second["pnl"] == pytest.approx(-0.05 * (spy + tlt))
    assert stress["data"]["source"] == "synthetic"


async def test_optimize_portfolio_is_out_of_sample_and_equals_the_domain(services: Services) -> None:
    async with _client(services) as client:
        body = _ok(
            await client.call_tool(
                "optimize_portfolio",
                {"symbols": SYMBOLS, "objective": "min_variance", "lookback": 400, "train_fraction": 0.75,
                 "covariance_estimator": "ledoit_wolf", "max_weight": 0.4, "end": END},
            )
        )  # fmt: skip
        infeasible = await client.call_tool(
            "optimize_portfolio", {"symbols": SYMBOLS, "objective": "target_return", "target_return": 9, "end": END}
        )
        frontier = await client.call_tool("efficient_frontier", {"symbols": SYMBOLS, "points": 6, "end": END})
    r = await _returns(services, SYMBOLS, 401)
    expected = portfolio.out_of_sample(
        r, SYMBOLS, "min_variance", 0.75, portfolio.Constraints(max_weight=0.4), covariance="ledoit_wolf"
    )
    assert body["weights"] == pytest.approx(expected.allocation.weights, abs=1e-9)
    assert body["out_of_sample"]["sharpe"] == pytest.approx(expected.test.sharpe, rel=1e-6)
    assert body["equal_weight_out_of_sample"]["annual_return"] == pytest.approx(
        expected.equal_weight_test.annual_return
    )
    assert "Ledoit-Wolf" in body["covariance_estimator"] and body["mu_estimator"] == "not used"
    assert body["train"]["bars"] + body["test"]["bars"] == 401 + 1  # the boundary close is in both windows
    assert max(body["weights"].values()) <= 0.4 + 1e-6 and body["data"]["synthetic"] is True
    assert error_of(infeasible)["code"] == "OPTIMIZATION_INFEASIBLE"
    assert not frontier.is_error, frontier.content
    points = frontier.structured_content["points"]
    assert len(points) == 6 and [p["annual_volatility"] for p in points] == sorted(
        p["annual_volatility"] for p in points
    )
    image = next(c for c in frontier.content if c.type == "image")
    assert base64.b64decode(image.data).startswith(b"\x89PNG\r\n\x1a\n")


async def test_rebalance_plans_then_trades_whole_shares_once(services: Services) -> None:
    prices = SetPrices(SPY="400", TLT="100", GLD="200", AAPL="50")
    use_paper_prices(services, prices, limits=RiskLimits(enforce_market_hours=False))
    args = {"weights": {"SPY": 0.5, "TLT": 0.3, "GLD": 0.2}, "cash_buffer": 0.05, "idempotency_key": "rb-1"}
    async with _client(services) as client:
        _ok(await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 100}))  # 5 % of equity
        plan = _ok(await client.call_tool("rebalance_portfolio", args))
        assert plan["dry_run"] is True and await _order_rows(services) == 1
        planned = {o["symbol"]: o for o in plan["orders"]}
        assert plan["orders"][0]["symbol"] == "AAPL" and planned["AAPL"]["side"] == "sell"  # sells first
        investable = Decimal(plan["investable"])
        assert planned["SPY"]["qty"] == str(int(investable * Decimal("0.5") / 400))
        done = _ok(await client.call_tool("rebalance_portfolio", args | {"dry_run": False}))
        assert {o["state"] for o in done["orders"]} == {"submitted"}
        again = _ok(await client.call_tool("rebalance_portfolio", args | {"dry_run": False}))
        positions = _ok(await client.call_tool("get_positions", {}))["positions"]
    held = {p["symbol"]: Decimal(p["qty"]) for p in positions}
    assert held == {s: Decimal(planned[s]["qty"]) for s in ("SPY", "TLT", "GLD")}
    assert again["orders"] == []  # at the targets now: nothing left to trade
    assert await _order_rows(services) == 1 + len(done["orders"])  # nothing sent twice


async def test_rebalance_bad_weights_change_nothing(services: Services) -> None:
    async with _client(services) as client:
        for args, argument in [
            ({"weights": {"SPY": 0.6, "TLT": 0.6}}, "weights"),
            ({"weights": {"SPY": 1.2, "TLT": -0.2}}, "weights"),
            ({"weights": {"SPY": 1.0}, "objective": "hrp"}, "weights"),
            ({"objective": "hrp"}, "symbols"),
        ]:
            error = error_of(await client.call_tool("rebalance_portfolio", args | {"dry_run": False}))
            assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == argument, args
    async with _client(services, frozenset({"read"})) as reader:
        refused = await reader.call_tool("rebalance_portfolio", {"weights": {"SPY": 1.0}})
        assert error_of(refused)["code"] == "FORBIDDEN"
    assert await _order_rows(services) == 0


async def test_risk_check_closes_a_stopped_position_and_trims_to_the_var_cap(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices, limits=RiskLimits(enforce_market_hours=False))
    async with _client(services) as client:
        _ok(await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 50}))
        prices.set("AAPL", "85")  # down 15 %
        plan = _ok(await client.call_tool("risk_check_positions", {"stop_loss_pct": 0.1, "max_var_pct": None}))
        assert plan["positions"][0]["stop_loss_hit"] is True
        assert [(o["symbol"], o["side"], o["qty"], o["reason"]) for o in plan["orders"]] == [
            ("AAPL", "sell", "50", "stop_loss")
        ]
        assert await _order_rows(services) == 1  # the dry run sent nothing
        done = _ok(
            await client.call_tool(
                "risk_check_positions", {"stop_loss_pct": 0.1, "max_var_pct": None, "dry_run": False}
            )
        )
        assert done["orders"][0]["state"] == "submitted"
        assert _ok(await client.call_tool("get_positions", {}))["positions"] == []


async def test_risk_check_trims_to_the_var_cap_on_synthetic_history(services: Services) -> None:
    async with _client(services) as client:
        _ok(await client.call_tool("place_order", {"symbol": "SPY", "side": "buy", "qty": 40}))
        _ok(await client.call_tool("place_order", {"symbol": "TLT", "side": "buy", "qty": 60}))
        plan = _ok(await client.call_tool("risk_check_positions", {"stop_loss_pct": None, "max_var_pct": 0.001}))
    assert plan["var_pct_of_equity_before"] > 0.001 >= plan["var_pct_of_equity_after"]
    assert {o["reason"] for o in plan["orders"]} == {"var_cap"} and len(plan["orders"]) == 2
    assert plan["data"]["synthetic"] is True


async def test_an_undefined_var_is_a_validation_error_not_a_schema_breaking_nan(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method whose figures come out NaN or infinite (seen once in the fuzz run) is refused, naming
    `methods`, instead of answering null where the output schema promises a number."""
    real = risk.tail_risk

    def nan_for_cornish_fisher(*args: Any, **kwargs: Any) -> risk.TailRisk:
        tail = real(*args, **kwargs)
        if tail.method == "cornish_fisher":
            return risk.TailRisk(tail.method, tail.confidence, tail.horizon, float("nan"), tail.cvar, tail.observations)
        return tail

    monkeypatch.setattr(risk, "tail_risk", nan_for_cornish_fisher)
    async with _client(services) as client:
        args = {"weights": {"SPY": 0.6, "QQQ": 0.4}, "lookback": 100}
        error = error_of(await client.call_tool("analyze_risk", {**args, "methods": ["historical", "cornish_fisher"]}))
        assert error["code"] == "VALIDATION_ERROR" and error["context"]["argument"] == "methods"
        assert "cornish_fisher" in error["message"]
        _ok(await client.call_tool("analyze_risk", {**args, "methods": ["historical", "normal"]}))
