"""Risk tools: analyze_risk, correlation_matrix, stress_test, risk_check_positions.

A portfolio is given as ``weights`` (fractions summing to 1, times ``portfolio_value``), as
``quantities`` (shares, valued at each symbol's last close), or not at all: then your current positions
at the broker (paper or Alpaca) at their market value. Returns come from daily bars of the market-data
source (``data_source``; default for given portfolios: the best configured backtest source; for your
positions: the trading price source). Formulas and sign conventions: `nt_mcp.domain.risk` (VaR and CVaR
are positive losses).
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field

from nt_mcp.adapters.data.market import MarketData, domain_error
from nt_mcp.domain import risk
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import ValidationError
from nt_mcp.services.market_series import Series, load_series
from nt_mcp.services.risk_guard import RiskRules, check_positions
from nt_mcp.tools.arguments import Text
from nt_mcp.tools.backtesting import SourceArg
from nt_mcp.tools.forecasting import DataUsed, EndArg, data_used
from nt_mcp.tools.registry import ToolContext, tool
from nt_mcp.tools.trading import IdempotencyKey, Trading

MAX_SIMULATED_RETURNS = 50_000_000  # about 5 s of drawing and 400 MB at most
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
CONVENTIONS = (
    "Simple daily returns; exposures held constant over each bar. VaR and CVaR are POSITIVE losses: as a "
    "fraction of the gross exposure (sum of |position values|) and in currency; negative means even the tail "
    "is a gain. historical: empirical quantile of overlapping `horizon`-bar compounded returns (VaR = "
    "inf{l: F_L(l) >= c}, CVaR = Rockafellar-Uryasev mean of the worst 1-c), as skfolio's value_at_risk/cvar. "
    "normal: mu*h, sigma*sqrt(h). cornish_fisher: the normal quantile corrected for skewness and excess "
    "kurtosis (scaled to h bars as i.i.d.), CVaR in closed form. monte_carlo: seeded multivariate normal paths "
    "of h bars from the assets' mean and covariance. Volatility: std(ddof=1) x sqrt(252). Max drawdown: "
    "negative fraction of the compounded value. Beta: cov(r_p, r_b) / var(r_b)."
)

WeightsArg = Annotated[
    dict[str, float] | None,
    Field(
        max_length=500,
        description="Portfolio as {symbol: weight}; weights are fractions summing to 1 (negative = short).",
    ),
]
QuantitiesArg = Annotated[
    dict[str, float] | None,
    Field(max_length=500, description="Or as {symbol: shares} (negative = short), valued at the last close."),
]
ValueArg = Annotated[
    float, Field(gt=0, le=1e12, description="Portfolio value in currency for `weights` (default 100,000).")
]
LookbackArg = Annotated[int, Field(ge=30, le=5000, description="Daily bars of history to measure on.")]
ConfidenceArg = Annotated[float, Field(gt=0, lt=1, description="Confidence level strictly in (0, 1), e.g. 0.95.")]
HorizonArg = Annotated[int, Field(ge=1, le=60, description="Holding period in bars (days).")]


class Holding(BaseModel):
    symbol: str
    exposure: float = Field(description="position value in currency (negative = short)")
    weight: float = Field(description="exposure / gross exposure")
    annual_volatility: float | None


class Portfolio:
    """Symbols and signed exposures (currency), and where they came from."""

    def __init__(self, symbols: list[str], exposures: list[float], origin: str) -> None:
        self.symbols = symbols
        self.exposures = np.asarray(exposures, dtype=np.float64)
        self.origin = origin


def _symbols(names: list[str], argument: str, limit: int) -> list[str]:
    if len(names) > limit:
        raise ValidationError(
            f"at most {limit} symbols (NT_ANALYTICS_MAX_SYMBOLS), got {len(names)}", argument=argument
        )
    for name in names:
        if not SYMBOL.match(name):
            raise ValidationError(f"{name[:40]!r} is not a symbol (letters, digits, . _ -)", argument=argument)
    if len({n.upper() for n in names}) != len(names):
        raise ValidationError("a symbol is listed twice", argument=argument)
    return names


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _market(ctx: ToolContext, data_source: str | None, positions: bool) -> MarketData:
    if positions and data_source is None:
        return ctx.services.market_data
    return ctx.services.market_hub.get(data_source)


async def _portfolio(
    ctx: ToolContext,
    weights: dict[str, float] | None,
    quantities: dict[str, float] | None,
    portfolio_value: float,
) -> Portfolio:
    """The portfolio to measure; quantities are valued later (they need the last close)."""
    limit = ctx.services.settings.analytics_max_symbols
    if weights is not None and quantities is not None:
        raise ValidationError("give weights or quantities, not both", argument="weights")
    if weights is not None:
        symbols = _symbols(list(weights), "weights", limit)
        if not symbols:
            raise ValidationError("weights is empty", argument="weights")
        values = [float(weights[s]) for s in symbols]
        if not all(math.isfinite(v) for v in values) or abs(sum(values) - 1.0) > 1e-6:
            raise ValidationError(f"weights must sum to 1, got {sum(values):.6g}", argument="weights")
        return Portfolio(symbols, [v * portfolio_value for v in values], "weights")
    if quantities is not None:
        symbols = _symbols(list(quantities), "quantities", limit)
        shares = [float(quantities[s]) for s in symbols]
        if not symbols or not any(shares) or not all(math.isfinite(q) and abs(q) <= 1e12 for q in shares):
            raise ValidationError("quantities must hold finite share counts, not all zero", argument="quantities")
        return Portfolio(symbols, shares, "quantities")
    positions = [p for p in await ctx.services.broker.get_positions(ctx.principal.subject) if p.qty != 0]
    if not positions:
        raise ValidationError("you hold no positions: give weights or quantities", argument="weights")
    symbols = _symbols([p.symbol for p in positions], "weights", limit)
    exposures = [
        float(p.market_value) if p.market_value is not None else float(p.qty * p.avg_entry_price) for p in positions
    ]
    return Portfolio(symbols, exposures, "positions")


async def _with_history(
    ctx: ToolContext,
    portfolio: Portfolio,
    lookback: int,
    data_source: str | None,
    end: datetime | None,
    extra: list[str] | None = None,
) -> Series:
    market = _market(ctx, data_source, portfolio.origin == "positions")
    symbols = portfolio.symbols + [s for s in (extra or []) if s not in portfolio.symbols]
    named = portfolio.origin if portfolio.origin in ("weights", "quantities") else "data_source"
    series = await load_series(
        market, symbols, "1Day", lookback + 1, end, risk.MIN_OBSERVATIONS + 1, "lookback", symbols_argument=named
    )
    if portfolio.origin == "quantities":
        portfolio.exposures = portfolio.exposures * series.closes[-1, : len(portfolio.symbols)]
        portfolio.origin = "quantities (valued at the last close)"
    return series


class VarOut(BaseModel):
    method: str
    var_pct: float = Field(description="VaR, positive loss, fraction of the gross exposure")
    cvar_pct: float = Field(description="CVaR (expected shortfall), positive loss, fraction of the gross exposure")
    var_amount: float = Field(description="VaR in currency")
    cvar_amount: float = Field(description="CVaR in currency")
    observations: int = Field(description="outcomes behind the figure (windows or simulated paths)")


class BenchmarkOut(BaseModel):
    symbol: str
    beta: float | None
    correlation: float | None


class RiskReport(BaseModel):
    portfolio_from: str = Field(description="weights, quantities or positions (your broker's)")
    holdings: list[Holding]
    gross_exposure: float
    confidence: float
    horizon_bars: int
    var: list[VarOut]
    annual_volatility: float | None
    max_drawdown: float | None = Field(description="negative fraction over the window")
    benchmark: BenchmarkOut | None
    conventions: str
    data: DataUsed


@tool(output=RiskReport, scope="read", title="Analyse portfolio risk", cost=3, read_only=True, open_world=True)
async def analyze_risk(
    ctx: ToolContext,
    weights: WeightsArg = None,
    quantities: QuantitiesArg = None,
    portfolio_value: ValueArg = 100_000.0,
    methods: Annotated[
        list[risk.VarMethod] | None,
        Field(max_length=4, description="VaR methods: historical, normal, cornish_fisher, monte_carlo (default all)."),
    ] = None,
    confidence: ConfidenceArg = 0.95,
    horizon: HorizonArg = 1,
    lookback: LookbackArg = 504,
    benchmark: Annotated[
        str | None, Field(min_length=1, max_length=32, description="Symbol for beta and correlation, e.g. SPY.")
    ] = None,
    simulations: Annotated[int, Field(ge=1000, le=100_000, description="Monte Carlo paths (seeded).")] = 10_000,
    seed: Annotated[int, Field(ge=0, le=2**31 - 1, description="Monte Carlo seed.")] = 0,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> RiskReport:
    """Risk of a portfolio (`weights` or `quantities`, or your current positions when both are omitted) on
    the last `lookback` daily bars: VaR and CVaR at `confidence` over `horizon` days by the historical,
    normal, Cornish-Fisher and Monte Carlo methods (positive losses, as a fraction and in currency), annual
    volatility, max drawdown, and beta and correlation to `benchmark`. Each holding's exposure, weight and
    volatility; the data source and window (synthetic prices are labelled). Bad input (weights not summing
    to 1, confidence outside (0, 1), unknown symbol, too few bars) returns VALIDATION_ERROR naming it."""
    portfolio = await _portfolio(ctx, weights, quantities, portfolio_value)
    chosen = list(dict.fromkeys(methods or list(risk.VAR_METHODS)))
    if "monte_carlo" in chosen and simulations * horizon * len(portfolio.symbols) > MAX_SIMULATED_RETURNS:
        raise ValidationError(
            f"monte_carlo would draw {simulations * horizon * len(portfolio.symbols):,} returns (simulations x "
            f"horizon x symbols); at most {MAX_SIMULATED_RETURNS:,}: lower simulations",
            argument="simulations",
        )
    if benchmark is not None:
        _symbols([benchmark], "benchmark", 1)
    series = await _with_history(ctx, portfolio, lookback, data_source, end, [benchmark] if benchmark else None)

    given = "quantities" if quantities is not None else "weights" if weights is not None else "positions"

    def compute() -> RiskReport:
        n = len(portfolio.symbols)
        returns = risk.simple_returns(series.closes)
        assets = returns[:, :n]
        exposures = portfolio.exposures
        gross = risk.gross(exposures)
        outs = []
        if not (math.isfinite(gross) and np.all(np.isfinite(exposures))):
            raise DomainValueError(given, "the exposures overflow (shares x price beyond a float's range)")
        for method in chosen:
            tail = risk.tail_risk(assets, exposures, method, confidence, horizon, simulations, seed)
            if not (math.isfinite(tail.var) and math.isfinite(tail.cvar)):  # the output schema needs numbers
                raise DomainValueError(
                    "methods",
                    f"{method} VaR is undefined for this portfolio over the lookback (its returns barely vary "
                    "or overflow); choose another method, portfolio or lookback",
                )
            outs.append(VarOut(method=method, var_pct=tail.var, cvar_pct=tail.cvar, var_amount=tail.var * gross,
                               cvar_amount=tail.cvar * gross, observations=tail.observations))  # fmt: skip
        r_p = risk.portfolio_returns(assets, exposures)
        bench = None
        if benchmark is not None:
            b = returns[:, series.symbols.index(benchmark)]
            bench = BenchmarkOut(
                symbol=benchmark, beta=_finite(risk.beta(r_p, b)), correlation=_finite(risk.correlation(r_p, b))
            )
        return RiskReport(
            portfolio_from=portfolio.origin,
            holdings=[
                Holding(
                    symbol=s,
                    exposure=float(exposures[i]),
                    weight=float(exposures[i] / gross),
                    annual_volatility=_finite(risk.annual_volatility(assets[:, i])),
                )
                for i, s in enumerate(portfolio.symbols)
            ],
            gross_exposure=gross,
            confidence=confidence,
            horizon_bars=horizon,
            var=outs,
            annual_volatility=_finite(risk.annual_volatility(r_p)),
            max_drawdown=_finite(risk.max_drawdown(r_p)),
            benchmark=bench,
            conventions=CONVENTIONS,
            data=data_used(series),
        )

    try:
        return await asyncio.to_thread(compute)
    except DomainValueError as error:
        raise domain_error(error) from None


class CorrelationReport(BaseModel):
    symbols: list[str]
    matrix: list[list[float | None]] = Field(
        description="Pearson correlation of daily simple returns, row/column order = symbols"
    )
    method: str
    data: DataUsed


@tool(output=CorrelationReport, scope="read", title="Correlation matrix", read_only=True, open_world=True)
async def correlation_matrix(
    ctx: ToolContext,
    symbols: Annotated[list[str], Field(min_length=2, max_length=500, description='Tickers, e.g. ["SPY", "TLT"].')],
    lookback: LookbackArg = 252,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> CorrelationReport:
    """Pearson correlations between the daily simple returns of `symbols` over the last `lookback` bars they
    all have (null where a series never moves), with the data source and window."""
    names = _symbols(symbols, "symbols", ctx.services.settings.analytics_max_symbols)
    market = ctx.services.market_hub.get(data_source)
    series = await load_series(market, names, "1Day", lookback + 1, end, risk.MIN_OBSERVATIONS + 1, "lookback")
    matrix = risk.correlation_matrix(risk.simple_returns(series.closes))
    return CorrelationReport(
        symbols=names,
        matrix=[[_finite(float(v)) for v in row] for row in matrix],
        method="Pearson correlation of daily simple returns close[t]/close[t-1] - 1 on the common bars",
        data=data_used(series),
    )


class Scenario(BaseModel):
    name: Text(100, description="What you call it, e.g. 'tech -10%'.")  # type: ignore[valid-type]
    shocks: dict[str, Annotated[float, Field(ge=-1, le=10)]] = Field(
        min_length=1,
        max_length=500,
        description="Instant price moves as fractions by symbol (-0.10 = -10 %); '*' = every symbol not named.",
    )


class ScenarioOut(BaseModel):
    name: str
    pnl: float = Field(description="profit (+) or loss (-) in currency")
    pnl_pct: float = Field(description="pnl / gross exposure")
    contributions: dict[str, float]
    shocks: dict[str, float] = Field(description="the shock applied to each holding")


class StressReport(BaseModel):
    portfolio_from: str
    holdings: list[Holding]
    gross_exposure: float
    scenarios: list[ScenarioOut]
    method: str
    data: DataUsed | None = Field(description="the prices used to value quantities (null for weights: none needed)")


@tool(output=StressReport, scope="read", title="Stress test", read_only=True, open_world=True)
async def stress_test(
    ctx: ToolContext,
    scenarios: Annotated[list[Scenario], Field(min_length=1, max_length=20, description="Named shock scenarios.")],
    weights: WeightsArg = None,
    quantities: QuantitiesArg = None,
    portfolio_value: ValueArg = 100_000.0,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> StressReport:
    """Apply the scenarios you name (instant price shocks per symbol, '*' for all others) to a portfolio
    (`weights`, `quantities`, or your current positions) and report each one's P&L in currency and as a
    fraction of the gross exposure, with each holding's contribution."""
    portfolio = await _portfolio(ctx, weights, quantities, portfolio_value)
    series = None
    if portfolio.origin == "quantities":
        market = _market(ctx, data_source, False)
        series = await load_series(market, portfolio.symbols, "1Day", 1, end, 1, "quantities", "quantities")
        portfolio.exposures = portfolio.exposures * series.closes[-1]
        portfolio.origin = "quantities (valued at the last close)"
    for scenario in scenarios:
        for name in scenario.shocks:
            if name != "*" and not SYMBOL.match(name):
                raise ValidationError(
                    f"{name[:40]!r} in scenario {scenario.name!r} is not a symbol", argument="scenarios"
                )
    exposures = {s: float(v) for s, v in zip(portfolio.symbols, portfolio.exposures, strict=True)}
    try:
        results = risk.stress(exposures, [(s.name, s.shocks) for s in scenarios])
    except DomainValueError as error:
        raise domain_error(error) from None
    gross = risk.gross(portfolio.exposures)
    return StressReport(
        portfolio_from=portfolio.origin,
        holdings=[
            Holding(symbol=s, exposure=v, weight=v / gross, annual_volatility=None) for s, v in exposures.items()
        ],
        gross_exposure=gross,
        scenarios=[
            ScenarioOut(name=r.name, pnl=r.pnl, pnl_pct=r.pnl_pct, contributions=r.contributions, shocks=r.shocks)
            for r in results
        ],
        method="pnl = sum over holdings of exposure x shock (instantaneous, no correlation or second-order effects)",
        data=data_used(series) if series is not None else None,
    )


class RiskOrder(BaseModel):
    symbol: str
    side: str
    qty: Decimal
    type: str
    reason: Literal["stop_loss", "var_cap"]
    idempotency_key: str
    state: Literal["planned", "refused", "submitted", "failed"]
    risk_checks: list[dict[str, str | bool]] = Field(default_factory=list)
    error: dict[str, str] | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    status: str | None = None
    filled_qty: Decimal | None = None


class PositionRisk(BaseModel):
    symbol: str
    qty: Decimal
    exposure: float
    unrealized_return: float = Field(description="unrealized P&L / |cost basis|")
    stop_loss_hit: bool


class RiskCheckReport(Trading):
    dry_run: bool
    equity: Decimal
    rules: dict[str, float | int | str | None]
    positions: list[PositionRisk]
    var_pct_of_equity_before: float | None
    var_pct_of_equity_after: float | None = Field(description="after the planned orders (whole shares)")
    orders: list[RiskOrder]
    data: DataUsed | None


@tool(
    output=RiskCheckReport,
    scope="trade",
    title="Apply risk rules to positions",
    destructive=True,
    open_world=True,
    cost=3,
)
async def risk_check_positions(
    ctx: ToolContext,
    stop_loss_pct: Annotated[
        float | None, Field(gt=0, lt=1, description="Close a position down this share of its cost (0.1 = -10 %).")
    ] = 0.10,
    max_var_pct: Annotated[
        float | None, Field(gt=0, lt=1, description="Cap on portfolio VaR as a share of equity (0.05 = 5 %).")
    ] = 0.05,
    method: Annotated[risk.VarMethod, Field(description="VaR method for the cap.")] = "historical",
    confidence: ConfidenceArg = 0.95,
    horizon: HorizonArg = 1,
    lookback: LookbackArg = 252,
    dry_run: Annotated[bool, Field(description="true (default): only plan. false: send the orders.")] = True,
    idempotency_key: IdempotencyKey = None,
    data_source: SourceArg = None,
) -> RiskCheckReport:
    """Apply the risk manager's rules to your positions: close any position whose unrealised loss reached
    `stop_loss_pct` of its cost; then, if the remaining positions' VaR exceeds `max_var_pct` of equity, trim
    them all by the same factor (whole shares, rounded so VaR ends at or under the cap). Returns the VaR
    before and after and the closing orders, each run through the pre-trade risk checks. dry_run=true (the
    default) sends nothing; dry_run=false sends them through the order router (journaled; reusing
    idempotency_key never sends twice). Moves money when dry_run=false."""
    rules = RiskRules(stop_loss_pct, max_var_pct, method, confidence, horizon, lookback)
    market = _market(ctx, data_source, True)
    outcome = await check_positions(ctx.services.orders, market, ctx.principal.subject, rules, dry_run, idempotency_key)
    return RiskCheckReport(
        dry_run=dry_run,
        equity=outcome.equity,
        rules={
            "stop_loss_pct": stop_loss_pct,
            "max_var_pct": max_var_pct,
            "method": method,
            "confidence": confidence,
            "horizon": horizon,
            "lookback": lookback,
        },
        positions=[PositionRisk(**p) for p in outcome.positions],
        var_pct_of_equity_before=outcome.var_before_pct,
        var_pct_of_equity_after=outcome.var_after_pct,
        orders=[RiskOrder(**o) for o in outcome.orders],
        data=data_used(outcome.series) if outcome.series is not None else None,
        mode=ctx.services.settings.mode,
        broker=ctx.services.broker.name,
    )


TOOLS = [analyze_risk, correlation_matrix, stress_test, risk_check_positions]
