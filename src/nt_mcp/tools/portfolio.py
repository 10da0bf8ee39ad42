"""Portfolio tools: optimize_portfolio, efficient_frontier, rebalance_portfolio.

The optimiser is `nt_mcp.domain.portfolio` (skfolio); its CPU work runs in the bounded worker
(`CpuWork`). Every result names the method, the expected-return and covariance estimators, the window
and the data source (synthetic prices are labelled). optimize_portfolio is out-of-sample by default:
fitted on the first `train_fraction` of the bars and judged on the rest beside equal weight.
"""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import numpy as np
from mcp_types import ImageContent
from pydantic import BaseModel, Field

from nt_mcp.adapters.data.market import domain_error
from nt_mcp.domain import portfolio, risk
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import BusinessLogicError, ValidationError
from nt_mcp.services.cpu_work import Progress, StopCheck
from nt_mcp.services.market_series import Series, load_series
from nt_mcp.services.rebalance import RebalanceRequest, rebalance
from nt_mcp.tools.backtesting import SourceArg
from nt_mcp.tools.forecasting import DataUsed, EndArg, data_used
from nt_mcp.tools.frontier_chart import frontier_png
from nt_mcp.tools.registry import ToolContext, ToolReply, tool
from nt_mcp.tools.risk import _symbols
from nt_mcp.tools.trading import IdempotencyKey, RiskCheck, Trading

SymbolsArg = Annotated[
    list[str],
    Field(min_length=2, max_length=500, description='Tickers to allocate between, e.g. ["SPY", "TLT", "GLD"].'),
]
ObjectiveArg = Annotated[
    portfolio.Objective,
    Field(description="max_sharpe, min_variance, target_return (needs target_return), risk_parity, hrp, equal_weight."),
]
MinWeightArg = Annotated[float, Field(ge=0, le=1, description="Lower bound of every weight (long-only: >= 0).")]
MaxWeightArg = Annotated[float, Field(gt=0, le=1, description="Upper bound of every weight.")]
BoundsArg = Annotated[
    dict[str, Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]] | None,
    Field(
        max_length=500,
        description="Per-symbol [low, high] bounds overriding min_weight/max_weight, e.g. {'SPY': [0.1, 0.5]}.",
    ),
]
MuArg = Annotated[portfolio.MuEstimator, Field(description="Expected returns: sample mean or James-Stein 'shrunk'.")]
CovArg = Annotated[portfolio.CovEstimator, Field(description="Covariance: 'sample' or 'ledoit_wolf' shrinkage.")]
LookbackArg = Annotated[int, Field(ge=60, le=10_000, description="Daily bars of history (756 = about 3 years).")]
RiskFreeArg = Annotated[float, Field(ge=-0.5, le=1, description="Annual risk-free rate (0.02 = 2 %) for Sharpe.")]


class PerformanceOut(BaseModel):
    bars: int
    annual_return: float
    annual_volatility: float | None
    sharpe: float | None
    total_return: float
    max_drawdown: float


def _perf(p: portfolio.Performance) -> PerformanceOut:
    vol = p.annual_volatility if np.isfinite(p.annual_volatility) else None
    return PerformanceOut(bars=p.bars, annual_return=p.annual_return, annual_volatility=vol, sharpe=p.sharpe,
                          total_return=p.total_return, max_drawdown=p.max_drawdown)  # fmt: skip


class Window(BaseModel):
    bars: int
    first_timestamp: datetime
    last_timestamp: datetime


class OptimizationReport(BaseModel):
    objective: str
    weights: dict[str, float] = Field(description="fractions of value, long-only, summing to 1")
    method: str
    mu_estimator: str
    covariance_estimator: str
    train: Window
    test: Window
    in_sample: PerformanceOut = Field(description="the weights over the training window they were fitted on")
    out_of_sample: PerformanceOut = Field(description="the same weights held over the next, unseen window")
    equal_weight_out_of_sample: PerformanceOut = Field(description="1/N over the same unseen window")
    beats_equal_weight: bool | None = Field(description="out-of-sample Sharpe above equal weight's (null: undefined)")
    conventions: str
    data: DataUsed


CONVENTIONS = (
    "Daily simple returns; weights held constant (rebalanced every bar); annual return = 252 x mean, "
    "annual volatility = sqrt(252) x std (ddof=1), Sharpe = (annual return - risk_free_rate) / annual "
    "volatility, max drawdown negative. Fitted on the train window only; test figures are out of sample."
)


def _constraints(
    names: list[str], min_weight: float, max_weight: float, bounds: dict[str, list[float]] | None
) -> portfolio.Constraints:
    if min_weight > max_weight:
        raise ValidationError(f"min_weight {min_weight} is above max_weight {max_weight}", argument="min_weight")
    return portfolio.Constraints(min_weight, max_weight, {k: (v[0], v[1]) for k, v in (bounds or {}).items()})


async def _series(
    ctx: ToolContext, symbols: list[str], lookback: int, data_source: str | None, end: datetime | None
) -> Series:
    names = _symbols(symbols, "symbols", ctx.services.settings.analytics_max_symbols)
    market = ctx.services.market_hub.get(data_source)
    return await load_series(market, names, "1Day", lookback + 1, end, portfolio.MIN_BARS + 1, "lookback")


def _window(series: Series, first: int, last: int) -> Window:
    return Window(bars=last - first + 1, first_timestamp=series.moment(first), last_timestamp=series.moment(last))


async def _solve(ctx: ToolContext, job: Any) -> Any:
    def run(progress: Progress, should_stop: StopCheck) -> Any:
        return job()

    try:
        return await ctx.services.cpu.run(run)
    except portfolio.OptimizationInfeasible as error:
        raise BusinessLogicError(
            error.message, code="OPTIMIZATION_INFEASIBLE", context={"argument": error.argument}
        ) from None
    except DomainValueError as error:
        raise domain_error(error) from None


async def _optimize(
    ctx: ToolContext,
    symbols: list[str],
    objective: portfolio.Objective,
    target_return: float | None,
    min_weight: float,
    max_weight: float,
    bounds: dict[str, list[float]] | None,
    mu_estimator: portfolio.MuEstimator,
    covariance_estimator: portfolio.CovEstimator,
    lookback: int,
    train_fraction: float,
    risk_free_rate: float,
    data_source: str | None,
    end: datetime | None,
) -> OptimizationReport:
    series = await _series(ctx, symbols, lookback, data_source, end)
    constraints = _constraints(series.symbols, min_weight, max_weight, bounds)
    returns = risk.simple_returns(series.closes)
    report: portfolio.OutOfSample = await _solve(
        ctx,
        lambda: portfolio.out_of_sample(
            returns,
            series.symbols,
            objective,
            train_fraction,
            constraints,
            mu_estimator,
            covariance_estimator,
            target_return,
            risk_free_rate,
        ),
    )
    train_last = report.train_bars  # returns row i is the move into close row i + 1
    test_sharpe, equal_sharpe = report.test.sharpe, report.equal_weight_test.sharpe
    return OptimizationReport(
        objective=objective,
        weights=report.allocation.weights,
        method=report.allocation.method,
        mu_estimator=report.allocation.mu_estimator,
        covariance_estimator=report.allocation.covariance_estimator,
        train=_window(series, 0, train_last),
        test=_window(series, train_last, len(series.closes) - 1),
        in_sample=_perf(report.train),
        out_of_sample=_perf(report.test),
        equal_weight_out_of_sample=_perf(report.equal_weight_test),
        beats_equal_weight=None if test_sharpe is None or equal_sharpe is None else test_sharpe > equal_sharpe,
        conventions=CONVENTIONS,
        data=data_used(series),
    )


@tool(output=OptimizationReport, scope="read", title="Optimise a portfolio", cost=3, read_only=True, open_world=True)
async def optimize_portfolio(
    ctx: ToolContext,
    symbols: SymbolsArg,
    objective: ObjectiveArg = "max_sharpe",
    target_return: Annotated[
        float | None, Field(ge=-1, le=10, description="Annual return target for objective=target_return (0.1 = 10 %).")
    ] = None,
    min_weight: MinWeightArg = 0.0,
    max_weight: MaxWeightArg = 1.0,
    bounds: BoundsArg = None,
    mu_estimator: MuArg = "sample",
    covariance_estimator: CovArg = "sample",
    lookback: LookbackArg = 756,
    train_fraction: Annotated[
        float, Field(ge=0.3, le=0.9, description="Share of the bars (the earliest) the weights are fitted on.")
    ] = 0.7,
    risk_free_rate: RiskFreeArg = 0.0,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> OptimizationReport:
    """Long-only portfolio weights by mean-variance (max Sharpe, min variance, target return), risk parity,
    hierarchical risk parity or equal weight (skfolio), with per-asset bounds and named estimators (sample
    or shrunk mean, sample or Ledoit-Wolf covariance). Out of sample by default: fitted on the first
    `train_fraction` of the last `lookback` daily bars, then held over the remaining bars, whose realised
    return, volatility, Sharpe and drawdown are reported beside equal weight's. An infeasible problem (a
    target above reach, no positive Sharpe) answers OPTIMIZATION_INFEASIBLE; bad input VALIDATION_ERROR."""
    return await _optimize(
        ctx, symbols, objective, target_return, min_weight, max_weight, bounds, mu_estimator,
        covariance_estimator, lookback, train_fraction, risk_free_rate, data_source, end,
    )  # fmt: skip


class FrontierPointOut(BaseModel):
    annual_return: float
    annual_volatility: float
    sharpe: float | None
    weights: dict[str, float]


class AssetPoint(BaseModel):
    symbol: str
    annual_return: float
    annual_volatility: float


class FrontierReport(BaseModel):
    points: list[FrontierPointOut] = Field(description="from lowest to highest volatility")
    assets: list[AssetPoint]
    equal_weight: PerformanceOut
    method: str
    mu_estimator: str
    covariance_estimator: str
    in_sample_note: str
    chart: str
    data: DataUsed


@tool(output=FrontierReport, scope="read", title="Efficient frontier", cost=3, read_only=True, open_world=True)
async def efficient_frontier(
    ctx: ToolContext,
    symbols: SymbolsArg,
    points: Annotated[int, Field(ge=2, le=50, description="Portfolios along the frontier.")] = 20,
    min_weight: MinWeightArg = 0.0,
    max_weight: MaxWeightArg = 1.0,
    bounds: BoundsArg = None,
    mu_estimator: MuArg = "sample",
    covariance_estimator: CovArg = "sample",
    lookback: LookbackArg = 756,
    risk_free_rate: RiskFreeArg = 0.0,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> ToolReply:
    """The long-only mean-variance efficient frontier of `symbols` (skfolio): `points` portfolios from
    minimum variance to maximum return with their annual return, volatility, Sharpe and weights, each asset
    alone and equal weight for comparison, and an 800x450 PNG chart of it. In-sample: fitted and measured on
    the same last `lookback` daily bars (optimize_portfolio reports out of sample)."""
    series = await _series(ctx, symbols, lookback, data_source, end)
    constraints = _constraints(series.symbols, min_weight, max_weight, bounds)
    returns = risk.simple_returns(series.closes)
    frontier: list[portfolio.FrontierPoint] = await _solve(
        ctx,
        lambda: portfolio.efficient_frontier(
            returns, series.symbols, points, constraints, mu_estimator, covariance_estimator, risk_free_rate
        ),
    )
    n = len(series.symbols)
    equal = portfolio.performance(returns, np.full(n, 1.0 / n), risk_free_rate)
    assets = []
    for i, symbol in enumerate(series.symbols):
        alone = portfolio.performance(returns, np.eye(n)[i], risk_free_rate)
        assets.append(
            AssetPoint(symbol=symbol, annual_return=alone.annual_return, annual_volatility=alone.annual_volatility)
        )
    best = max((p for p in frontier if p.sharpe is not None), key=lambda p: p.sharpe or 0.0, default=None)
    title = f"Efficient frontier, {n} assets ({series.source}{', SYNTHETIC' if series.synthetic else ''})"
    png = frontier_png(
        [(p.annual_volatility, p.annual_return) for p in frontier],
        [(a.symbol, a.annual_volatility, a.annual_return) for a in assets],
        (equal.annual_volatility, equal.annual_return),
        (best.annual_volatility, best.annual_return) if best is not None else None,
        title,
    )
    mu_name, cov_name = portfolio.estimator_names("frontier", mu_estimator, covariance_estimator)
    report = FrontierReport(
        points=[
            FrontierPointOut(
                annual_return=p.annual_return, annual_volatility=p.annual_volatility, sharpe=p.sharpe, weights=p.weights
            )
            for p in frontier
        ],
        assets=assets,
        equal_weight=_perf(equal),
        method="skfolio MeanRisk(efficient_frontier_size=points): minimise variance for evenly spaced return "
        "targets, long-only, within the bounds",
        mu_estimator=mu_name,
        covariance_estimator=cov_name,
        in_sample_note="fitted and measured on the same bars: the frontier is optimistic out of sample",
        chart="PNG (800x450) attached: annual volatility (x) against annual return (y); frontier line, highest "
        "Sharpe point ringed, equal weight as a square, single assets as labelled grey dots",
        data=data_used(series),
    )
    image = ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")
    return ToolReply(data=report, extra_content=[image])


class RebalanceRow(BaseModel):
    symbol: str
    price: Decimal = Field(description="the broker's latest price, the one orders are sized and risk-checked at")
    target_weight: float
    current_weight: float
    drift: float
    current_qty: Decimal
    target_qty: Decimal
    trade_qty: Decimal = Field(description="signed shares to trade (0: within drift_threshold or already there)")
    skipped: bool = Field(description="true: off target but within drift_threshold, left alone")


class RebalanceOrder(BaseModel):
    symbol: str
    side: str
    qty: Decimal
    type: str
    reason: str
    idempotency_key: str
    state: Literal["planned", "refused", "submitted", "failed"]
    risk_checks: list[RiskCheck] = Field(default_factory=list)
    error: dict[str, str] | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    status: str | None = None
    filled_qty: Decimal | None = None


class RebalanceReport(Trading):
    dry_run: bool
    weights_from: str = Field(description="'weights' (given) or the optimiser objective that produced them")
    target_weights: dict[str, float]
    equity: Decimal
    investable: Decimal = Field(description="equity x (1 - cash_buffer)")
    rows: list[RebalanceRow]
    orders: list[RebalanceOrder] = Field(description="sells first, then buys")
    idempotency_key: str
    price_source: str
    optimisation: OptimizationReport | None = Field(description="when weights came from the optimiser")


@tool(
    output=RebalanceReport,
    scope="trade",
    title="Rebalance to target weights",
    destructive=True,
    open_world=True,
    cost=5,
)
async def rebalance_portfolio(
    ctx: ToolContext,
    weights: Annotated[
        dict[str, float] | None,
        Field(
            max_length=500,
            description="Target weights {symbol: fraction}, long-only, summing to 1. Or give objective + symbols.",
        ),
    ] = None,
    objective: Annotated[
        portfolio.Objective | None,
        Field(description="Compute the targets with optimize_portfolio's objective on `symbols` instead."),
    ] = None,
    symbols: Annotated[list[str] | None, Field(max_length=500, description="Symbols for `objective`.")] = None,
    lookback: LookbackArg = 756,
    cash_buffer: Annotated[float, Field(ge=0, le=0.5, description="Share of equity kept in cash.")] = 0.02,
    drift_threshold: Annotated[
        float, Field(ge=0, le=1, description="Leave a symbol alone while |current - target weight| <= this.")
    ] = 0.01,
    close_unlisted: Annotated[bool, Field(description="Sell positions in symbols not in the targets.")] = True,
    dry_run: Annotated[bool, Field(description="true (default): only plan. false: send the orders.")] = True,
    idempotency_key: IdempotencyKey = None,
    data_source: SourceArg = None,
) -> RebalanceReport:
    """The orders that move your account to target weights: give `weights`, or `objective` + `symbols` to
    take them from the optimiser (fitted on the train part of the last `lookback` daily bars, as
    optimize_portfolio reports). Targets are whole shares of equity x (1 - cash_buffer) at the broker's
    latest prices; symbols within `drift_threshold` are left alone; positions not in the targets are sold
    when close_unlisted. Sells come first. Every order runs the pre-trade risk checks; dry_run=true (the
    default) sends nothing, dry_run=false sends them through the order router (journaled; reusing
    idempotency_key never sends twice). Moves money when dry_run=false."""
    optimisation = None
    if (weights is None) == (objective is None):
        raise ValidationError("give weights, or objective with symbols (not both)", argument="weights")
    if objective is not None:
        if not symbols:
            raise ValidationError("objective needs symbols", argument="symbols")
        optimisation = await _optimize(
            ctx, symbols, objective, None, 0.0, 1.0, None, "sample", "sample", lookback, 0.7, 0.0, data_source, None
        )
        weights = {s: w for s, w in optimisation.weights.items() if w > 1e-6}
        total = sum(weights.values())
        weights = {s: w / total for s, w in weights.items()}
    assert weights is not None
    plan = await rebalance(
        ctx.services.orders,
        RebalanceRequest(
            ctx.principal.subject,
            weights,
            ctx.services.settings.analytics_max_symbols,
            cash_buffer,
            drift_threshold,
            close_unlisted,
            dry_run,
            idempotency_key,
        ),
    )
    broker = ctx.services.broker
    return RebalanceReport(
        dry_run=dry_run,
        weights_from="weights" if objective is None else objective,
        target_weights=weights,
        equity=plan.equity,
        investable=plan.investable,
        rows=[RebalanceRow(**r) for r in plan.rows],
        orders=[RebalanceOrder(**o) for o in plan.orders],
        idempotency_key=plan.idempotency_key,
        price_source="alpaca" if broker.name == "alpaca" else ctx.services.market_data.source,
        optimisation=optimisation,
        mode=ctx.services.settings.mode,
        broker=broker.name,
    )


TOOLS = [optimize_portfolio, efficient_frontier, rebalance_portfolio]
