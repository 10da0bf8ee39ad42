"""Backtesting tools: list_strategies, get_strategy_info, run_backtest, get_backtest, list_backtests
(optimize_strategy is in `nt_mcp.tools.optimization` and shares this module's arguments and helpers).

Thin: validate, load bars from the chosen market-data source, run the pure engine in a worker thread,
shape and store the result. Bad input raises a ValidationError naming the argument before anything
is stored.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from mcp_types import ImageContent
from pydantic import BaseModel, Field

from nt_mcp.adapters.data import synthetic
from nt_mcp.adapters.data.market import MarketData, domain_error
from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies import STRATEGIES, StrategySpec, get_strategy, run_strategy
from nt_mcp.errors import NotFoundError, ValidationError
from nt_mcp.infra.backtests import StoredBacktest
from nt_mcp.tools.arguments import DATETIME_HELP, OptionalUtcDateTime
from nt_mcp.tools.charts import equity_curve_png
from nt_mcp.tools.costs import backtest_cost
from nt_mcp.tools.registry import ToolContext, ToolReply, tool

if TYPE_CHECKING:  # the compiled engine and metrics (numba) load on the first backtest, not with the tool list
    from nt_mcp.domain.backtest.engine import BacktestResult, Trade
    from nt_mcp.domain.backtest.metrics import Metrics

MAX_BARS = 5_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CONVENTIONS = (
    "Signals are decided at a bar's close and filled at the NEXT bar's open (never the same bar: no "
    "look-ahead). Commission (`commission` as a fraction of traded value, plus `commission_per_order`) is "
    "charged on both legs, entry and exit. Slippage moves every fill against you by `slippage_bps`. "
    "Sizing 'fraction' (default, size 1.0) buys whole units with that fraction of equity, like "
    "backtesting.py's buy(): units = floor(cash * (1 - 2**-52) / (open * (1 + commission))). Stops and "
    "take-profits are fractions of the entry price, checked against each bar's low/high. Equity is marked "
    "at each close; a position still open at the end is marked at the last close and reported as an open "
    "trade (unless close_at_end). Metrics follow backtesting.py: returns and drawdowns are fractions "
    "(0.12 = 12 %, drawdowns negative), Sharpe/Sortino/volatility annualised from the equity's returns per "
    "calendar day (intraday and daily bars), week, month or year, with periods_per_year = 252 for weekday "
    "daily data, 365 when weekends trade too, 52 weekly, 12 monthly, 1 yearly (metrics.periods_per_year says "
    "which); profit_factor is computed on trade returns, not cash; buy & hold over the same bars from the end "
    "of the strategy's warm-up."
)

Timeframe = Literal["1Min", "5Min", "15Min", "1Hour", "1Day"]
Source = Literal["synthetic", "files", "alpaca"]
ParamValue = int | float | bool

StrategyArg = Annotated[
    str, Field(min_length=1, max_length=64, description="Strategy name from list_strategies, e.g. 'sma_crossover'.")
]
SymbolArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$",
        description="Ticker, e.g. 'SPY'. For data_source=files the file NT_DATA_DIR/<SYMBOL>.csv or .parquet.",
    ),
]
StartArg = Annotated[
    OptionalUtcDateTime,
    Field(
        description=f"First bar to include ({DATETIME_HELP}). Default: one year before `end`; with "
        "data_source=files, the file's first bar."
    ),
]
EndArg = Annotated[
    OptionalUtcDateTime,
    Field(description=f"Last bar to include, inclusive ({DATETIME_HELP}). Default: now."),
]
TimeframeArg = Annotated[
    Timeframe, Field(description="Bar length. Ignored by data_source=files, whose bars are as stored in the file.")
]
ParamsArg = Annotated[
    dict[str, ParamValue] | None,
    Field(description="The strategy's parameters by name (see get_strategy_info); missing ones take their default."),
]
CashArg = Annotated[float, Field(gt=0, le=1e12, description="Starting cash.")]
CommissionArg = Annotated[
    float, Field(ge=0, lt=0.1, description="Commission as a fraction of traded value per fill (0.001 = 0.1 %).")
]
CommissionFixedArg = Annotated[float, Field(ge=0, le=1e6, description="Fixed commission per fill, in cash.")]
SlippageArg = Annotated[float, Field(ge=0, lt=1000, description="Slippage in basis points against every fill.")]
SourceArg = Annotated[
    Source | None,
    Field(
        description="Where bars come from: 'alpaca' (needs NT_ALPACA_API_KEY/NT_ALPACA_SECRET_KEY), 'files' "
        "(NT_DATA_DIR), 'synthetic' (seeded random walk, NOT real prices). Default: the best configured."
    ),
]
SizingArg = Annotated[
    Literal["fraction", "quantity", "cash"],
    Field(description="'fraction' of equity (size in (0, 1]), fixed 'quantity' of units, or fixed 'cash' amount."),
]
SizeArg = Annotated[float, Field(gt=0, le=1e12, description="Meaning depends on sizing; default 1.0 = all-in.")]
StopArg = Annotated[
    float | None, Field(gt=0, lt=1, description="Stop-loss as a fraction below (long) / above (short) entry.")
]
TakeProfitArg = Annotated[float | None, Field(gt=0, lt=100, description="Take-profit as a fraction beyond entry.")]
TrailingArg = Annotated[
    float | None, Field(gt=0, lt=1, description="Trailing stop as a fraction from the best price since entry.")
]
CloseAtEndArg = Annotated[
    bool, Field(description="Close a position still open after the last bar at the last close (default: keep open).")
]


# ---------------------------------------------------------------- output models


class ParameterInfo(BaseModel):
    name: str
    type: Literal["int", "float", "bool"]
    default: ParamValue
    minimum: float | None
    maximum: float | None
    description: str


class StrategyInfo(BaseModel):
    name: str
    rule: str = Field(description="the strategy's rule in words")
    parameters: list[ParameterInfo]


class StrategyList(BaseModel):
    strategies: list[StrategyInfo]


class MetricsOut(BaseModel):
    """Fractions, not percent. null where a figure is undefined (no trades, no variance)."""

    start_equity: float
    final_equity: float
    peak_equity: float
    total_return: float | None = Field(description="final_equity / start_equity - 1")
    buy_and_hold_return: float | None
    cagr: float | None
    annual_return: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float | None = Field(description="deepest fall from a peak, a negative fraction")
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float | None
    exposure: float | None = Field(description="fraction of bars with a position")
    num_trades: int = Field(description="closed trades (a trade still open at the end is not counted here)")
    win_rate: float | None
    best_trade: float | None
    worst_trade: float | None
    avg_trade: float | None
    profit_factor: float | None = Field(
        description="sum of winning trades' returns / |sum of losing trades' returns|: computed on trade RETURNS "
        "(fractions), not cash P&L, as backtesting.py does; null without a losing trade"
    )
    expectancy: float | None
    total_commission: float
    periods_per_year: int | None = Field(
        None,
        description="annualisation factor used for annual_return, volatility, Sharpe, Sortino, Calmar: 252 "
        "(weekday daily data), 365 (data with weekends), 52 (weekly), 12 (monthly) or 1 (yearly bars)",
    )


class TradeOut(BaseModel):
    entry_time: datetime
    exit_time: datetime | None = Field(description="null while the trade is still open")
    entry_bar: int
    exit_bar: int | None
    entry_price: float
    exit_price: float | None
    size: float = Field(description="units; negative for a short")
    pnl: float = Field(description="size * (exit - entry) - commission; open trades marked at the last close")
    return_pct: float = Field(description="a fraction, commission included")
    commission: float
    exit_reason: str


class DataProvenance(BaseModel):
    source: Source
    synthetic: bool = Field(description="true: generated prices (seeded random walk), NOT real market data")
    symbol: str
    timeframe: str = Field(description="requested bar length; for files, the file's own bars were used")
    bars: int
    first_timestamp: datetime
    last_timestamp: datetime
    median_bar_interval_s: float | None = Field(description="measured spacing between bars")
    detail: str


class BacktestSettingsOut(BaseModel):
    initial_cash: float
    commission: float
    commission_per_order: float
    slippage_bps: float
    sizing: str
    size: float
    stop_loss: float | None
    take_profit: float | None
    trailing_stop: float | None
    close_at_end: bool


class BacktestReport(BaseModel):
    backtest_id: str = Field(
        description="read it back (with every trade) with get_backtest, or as the MCP resource backtest://{id}"
    )
    strategy: str
    symbol: str
    params: dict[str, ParamValue] = Field(description="the parameters used, defaults filled in")
    settings: BacktestSettingsOut
    metrics: MetricsOut
    trade_count: int = Field(description="every trade, including one still open at the end")
    open_trades: int
    cancelled_orders: int = Field(description="entries the simulated broker refused (too little cash)")
    first_trade: TradeOut | None
    last_trade: TradeOut | None
    data: DataProvenance
    conventions: str
    equity_chart: str = Field(description="what the attached image shows")
    elapsed_s: float


class StoredBacktestOut(BaseModel):
    backtest_id: str
    created_at: datetime
    strategy: str
    symbol: str
    timeframe: str
    params: dict[str, ParamValue]
    settings: BacktestSettingsOut
    metrics: MetricsOut
    data: DataProvenance
    trade_count: int
    trades_offset: int
    trades: list[TradeOut]
    next_trades_offset: int | None = Field(description="pass as trades_offset for the next page; null at the end")


class BacktestSummaryOut(BaseModel):
    backtest_id: str
    created_at: datetime
    strategy: str
    symbol: str
    timeframe: str
    data_source: str
    final_equity: float | None
    total_return: float | None
    sharpe: float | None
    max_drawdown: float | None
    num_trades: int | None


class BacktestList(BaseModel):
    principal: str
    backtests: list[BacktestSummaryOut]


# ---------------------------------------------------------------- helpers


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _metrics_out(m: Metrics) -> MetricsOut:
    values: dict[str, Any] = {}
    for name, value in m.as_dict().items():
        key = "num_trades" if name == "n_trades" else name
        values[key] = value if isinstance(value, int) else _finite(value)
    for must in ("start_equity", "final_equity", "peak_equity", "total_commission"):
        values[must] = values[must] if values[must] is not None else float("nan")
    return MetricsOut(**values)


def _dt(value: np.datetime64 | None) -> datetime | None:
    if value is None:
        return None
    ns = int(value.astype("datetime64[ns]").view(np.int64))
    return datetime.fromtimestamp(ns // 10**9, UTC) + timedelta(microseconds=(ns % 10**9) // 1000)


def _trade_out(t: Trade) -> TradeOut:
    entry_time = _dt(t.entry_time)
    assert entry_time is not None
    return TradeOut(
        entry_time=entry_time,
        exit_time=_dt(t.exit_time),
        entry_bar=t.entry_bar,
        exit_bar=t.exit_bar,
        entry_price=t.entry_price,
        exit_price=t.exit_price,
        size=t.size,
        pnl=t.pnl,
        return_pct=t.return_pct,
        commission=t.commission,
        exit_reason=t.exit_reason,
    )


def strategy_spec(name: str) -> StrategySpec:
    """The registered strategy ``name``, or a VALIDATION_ERROR naming ``strategy``."""
    try:
        return get_strategy(name)
    except DomainValueError as error:
        raise ValidationError(error.message, argument="strategy") from None


def validated_params(spec: StrategySpec, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against ``spec`` with defaults filled in, or a VALIDATION_ERROR naming
    ``params.<name>``."""
    try:
        return spec.validate(params)
    except DomainValueError as error:
        name = f"params.{error.argument}"
        raise ValidationError(f"{name} {error.message}", argument=name) from None


_CONFIG_ARGUMENTS = {"cash": "initial_cash", "commission_pct": "commission", "commission_fixed": "commission_per_order"}


def _config(
    initial_cash: float,
    commission: float,
    commission_per_order: float,
    slippage_bps: float,
    sizing: str,
    size: float,
    stop_loss: float | None,
    take_profit: float | None,
    trailing_stop: float | None,
    close_at_end: bool,
) -> BacktestConfig:
    try:
        return BacktestConfig(
            cash=initial_cash,
            sizing=sizing,  # type: ignore[arg-type]
            size=size,
            commission_pct=commission,
            commission_fixed=commission_per_order,
            slippage_bps=slippage_bps,
            stop_loss=stop_loss,
            take_profit=take_profit,
            trailing_stop=trailing_stop,
            close_at_end=close_at_end,
        )
    except DomainValueError as error:
        argument = _CONFIG_ARGUMENTS.get(error.argument, error.argument)
        raise ValidationError(f"{argument} {error.message}", argument=argument) from None


def _settings_out(cfg: BacktestConfig) -> BacktestSettingsOut:
    return BacktestSettingsOut(
        initial_cash=cfg.cash,
        commission=cfg.commission_pct,
        commission_per_order=cfg.commission_fixed,
        slippage_bps=cfg.slippage_bps,
        sizing=str(cfg.sizing),
        size=cfg.size,
        stop_loss=cfg.stop_loss,
        take_profit=cfg.take_profit,
        trailing_stop=cfg.trailing_stop,
        close_at_end=cfg.close_at_end,
    )


def _range(source: str, timeframe: str, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end_u = end if end is not None else datetime.now(UTC)
    default_start = EPOCH if source == "files" else end_u - timedelta(days=365)
    start_u = default_start if start is None else start
    if start_u > end_u:
        raise ValidationError(f"start ({start_u.isoformat()}) is after end ({end_u.isoformat()})", argument="start")
    if source != "files":
        estimated = (end_u - start_u).total_seconds() / synthetic.TIMEFRAMES[timeframe] * 5 / 7
        if estimated > MAX_BARS:
            raise ValidationError(
                f"{start_u.date()}..{end_u.date()} at {timeframe} is about {estimated:,.0f} bars; at most "
                f"{MAX_BARS:,} per backtest: shorten the range or use a longer timeframe",
                argument="start",
            )
    return start_u, end_u


async def _load(
    ctx: ToolContext, data_source: str | None, symbol: str, timeframe: str, start: datetime | None, end: datetime | None
) -> tuple[MarketData, Bars]:
    market = ctx.services.market_hub.get(data_source)
    start_u, end_u = _range(market.source, timeframe, start, end)
    bars = await market.get_bars(symbol, timeframe, start_u, end_u)
    if len(bars) > MAX_BARS:
        raise ValidationError(f"{len(bars):,} bars in range; at most {MAX_BARS:,} per backtest", argument="start")
    return market, bars


def _provenance(market: MarketData, symbol: str, timeframe: str, bars: Bars) -> DataProvenance:
    ts = bars.ts_ns
    is_synthetic = market.source == "synthetic"
    if is_synthetic:
        detail = (
            "SYNTHETIC: seeded geometric Brownian motion (drift 8 %/yr, volatility 20 %/yr, anchored to close at "
            "100 on 2020-01-01 (not at the start of this range), seed 0), deterministic; not real market prices"
        )
    elif market.source == "files":
        detail = f"file {symbol}.csv/.parquet in NT_DATA_DIR"
    else:
        detail = f"Alpaca historical bars, {getattr(market, 'feed', 'iex')} feed, split-adjusted"
    first, last = _dt(bars.timestamps[0]), _dt(bars.timestamps[-1])
    assert first is not None and last is not None
    return DataProvenance(
        source=market.source,
        synthetic=is_synthetic,
        symbol=symbol,
        timeframe=timeframe,
        bars=len(bars),
        first_timestamp=first,
        last_timestamp=last,
        median_bar_interval_s=float(np.median(np.diff(ts))) / 1e9 if len(bars) > 1 else None,
        detail=detail,
    )


def _buy_and_hold(bars: Bars, result: BacktestResult, warmup: int) -> npt.NDArray[np.float64]:
    """Buy & hold of the same cash from the end of the warm-up (as the metric is)."""
    hold = np.full(len(bars), np.nan)
    hold[warmup:] = bars.close[warmup:] / bars.close[warmup] * result.config.cash
    return hold


def _run_with_warmup(
    bars: Bars, spec: StrategySpec, params: dict[str, Any], cfg: BacktestConfig
) -> tuple[BacktestResult, int]:
    """Exactly `run_strategy`, also returning the warm-up bar."""
    from nt_mcp.domain.backtest.engine import run_backtest

    try:
        out = spec.run(bars, params)
        result = run_backtest(bars, out.signals, cfg, stop_distance=out.stop_distance, first_trading_bar=out.warmup)
    except DomainValueError as error:
        raise domain_error(error) from None
    return result, out.warmup


def _run(bars: Bars, strategy: str, params: dict[str, Any], cfg: BacktestConfig) -> BacktestResult:
    try:
        return run_strategy(bars, strategy, params, cfg)
    except DomainValueError as error:
        raise domain_error(error) from None


def stored_backtest_out(
    stored: StoredBacktest, trades_offset: int = 0, trades_limit: int | None = None
) -> StoredBacktestOut:
    """A stored backtest as get_backtest returns it, with the trades from ``trades_offset`` (at most
    ``trades_limit`` of them; None: all)."""
    end = len(stored.trades) if trades_limit is None else trades_offset + trades_limit
    page = stored.trades[trades_offset:end]
    created = stored.created_at if stored.created_at.tzinfo else stored.created_at.replace(tzinfo=UTC)
    return StoredBacktestOut(
        backtest_id=stored.id,
        created_at=created,
        strategy=stored.strategy,
        symbol=stored.symbol,
        timeframe=stored.timeframe,
        params=stored.params,
        settings=BacktestSettingsOut(**stored.config),
        metrics=MetricsOut(**stored.metrics),
        data=DataProvenance(**stored.provenance),
        trade_count=len(stored.trades),
        trades_offset=trades_offset,
        trades=[TradeOut(**t) for t in page],
        next_trades_offset=end if end < len(stored.trades) else None,
    )


def chart_title(strategy: str, symbol: str, source: str) -> str:
    """The equity chart's title: strategy, symbol and where the bars came from, said once."""
    return f"{strategy} on {symbol} ({'SYNTHETIC, not real prices' if source == 'synthetic' else source})"


# ---------------------------------------------------------------- tools


def _info(spec: StrategySpec) -> StrategyInfo:
    described = spec.describe()
    return StrategyInfo(
        name=spec.name,
        rule=spec.description,
        parameters=[ParameterInfo(**p) for p in described["parameters"]],
    )


@tool(output=StrategyList, scope="read", title="List strategies", read_only=True, idempotent=True)
async def list_strategies(ctx: ToolContext) -> StrategyList:
    """List the strategies run_backtest and optimize_strategy can run: each one's name, its rule in
    words, and its parameters with type, bounds and default."""
    return StrategyList(strategies=[_info(spec) for spec in STRATEGIES.values()])


@tool(output=StrategyInfo, scope="read", title="Strategy details", read_only=True, idempotent=True)
async def get_strategy_info(ctx: ToolContext, strategy: StrategyArg) -> StrategyInfo:
    """Describe one strategy: its rule in words and each parameter's type, inclusive bounds, default
    and meaning. Use the names as keys of run_backtest's `params`."""
    return _info(strategy_spec(strategy))


@tool(output=BacktestReport, scope="backtest", title="Run a backtest", cost=backtest_cost, open_world=True)
async def run_backtest(
    ctx: ToolContext,
    strategy: StrategyArg,
    symbol: SymbolArg,
    start: StartArg = None,
    end: EndArg = None,
    timeframe: TimeframeArg = "1Day",
    params: ParamsArg = None,
    initial_cash: CashArg = 10_000.0,
    commission: CommissionArg = 0.0,
    commission_per_order: CommissionFixedArg = 0.0,
    slippage_bps: SlippageArg = 0.0,
    data_source: SourceArg = None,
    sizing: SizingArg = "fraction",
    size: SizeArg = 1.0,
    stop_loss: StopArg = None,
    take_profit: TakeProfitArg = None,
    trailing_stop: TrailingArg = None,
    close_at_end: CloseAtEndArg = False,
) -> ToolReply:
    """Backtest a strategy on one symbol's historical bars and store the result.

    Returns metrics (final_equity, total_return, CAGR, Sharpe, Sortino, Calmar, max drawdown, win rate,
    profit factor, num_trades, buy & hold return, ...), the trade count with the first and last trades,
    where the data came from (source, bar count, first/last timestamp; `synthetic: true` means generated
    prices, not real ones), a `backtest_id` for get_backtest (every trade), and an 800x350 PNG of the
    equity curve against buy & hold as image content.

    Conventions: signals are decided at a bar's close and filled at the next bar's open; commission is
    charged on both legs; sizing defaults to all-in whole units; a position open at the end is marked at
    the last close and reported as an open trade. Invalid input (unknown strategy, slow <= fast, start
    after end, no data in range) returns VALIDATION_ERROR naming the argument, and nothing is stored."""
    started = time.perf_counter()
    spec = strategy_spec(strategy)
    checked = validated_params(spec, params)
    if start is not None and end is not None and start > end:
        raise ValidationError(f"start ({start.isoformat()}) is after end ({end.isoformat()})", argument="start")
    cfg = _config(
        initial_cash, commission, commission_per_order, slippage_bps, sizing, size,
        stop_loss, take_profit, trailing_stop, close_at_end,
    )  # fmt: skip
    market, bars = await _load(ctx, data_source, symbol, timeframe, start, end)
    await ctx.log("info", f"run_backtest: {len(bars):,} {timeframe} bars of {symbol} from {market.source}")
    result, warmup = await asyncio.to_thread(_run_with_warmup, bars, spec, checked, cfg)
    hold = _buy_and_hold(bars, result, warmup)
    title = chart_title(spec.name, symbol, market.source)
    png = await asyncio.to_thread(equity_curve_png, bars.ts_ns, result.equity, hold, title)
    trades = [_trade_out(t) for t in result.trades]
    provenance = _provenance(market, symbol, timeframe, bars)
    metrics = _metrics_out(result.metrics)
    settings = _settings_out(cfg)
    backtest_id = uuid.uuid4().hex
    await ctx.services.backtests.insert(
        StoredBacktest(
            id=backtest_id,
            principal=ctx.principal.subject,
            strategy=spec.name,
            symbol=symbol,
            timeframe=timeframe,
            data_source=market.source,
            params=checked,
            config=settings.model_dump(mode="json"),
            metrics=metrics.model_dump(mode="json"),
            trades=[t.model_dump(mode="json") for t in trades],
            provenance=provenance.model_dump(mode="json"),
            created_at=datetime.now(UTC),
        ),
        chart_png=png,
    )
    await ctx.log("info", f"run_backtest: {len(trades)} trades; stored as backtest://{backtest_id}")
    report = BacktestReport(
        backtest_id=backtest_id,
        strategy=spec.name,
        symbol=symbol,
        params=checked,
        settings=settings,
        metrics=metrics,
        trade_count=len(trades),
        open_trades=sum(1 for t in trades if t.exit_time is None),
        cancelled_orders=result.cancelled_orders,
        first_trade=trades[0] if trades else None,
        last_trade=trades[-1] if trades else None,
        data=provenance,
        conventions=CONVENTIONS,
        equity_chart="PNG (800x350) attached: strategy equity at each close (blue; shaded = range within each "
        "plotted step when bars were bucketed) and buy & hold of the same starting cash from the end of the "
        "strategy's warm-up (grey)",
        elapsed_s=round(time.perf_counter() - started, 4),
    )
    image = ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")
    return ToolReply(data=report, extra_content=[image])


@tool(output=StoredBacktestOut, scope="read", title="Read a stored backtest", read_only=True, idempotent=True)
async def get_backtest(
    ctx: ToolContext,
    backtest_id: Annotated[str, Field(min_length=1, max_length=64, description="The id run_backtest returned.")],
    trades_offset: Annotated[int, Field(ge=0, description="First trade to return (0-based).")] = 0,
    trades_limit: Annotated[int, Field(ge=1, le=1000, description="At most this many trades per page.")] = 200,
) -> StoredBacktestOut:
    """Read back one of YOUR stored backtests: parameters, settings, metrics, data provenance and the
    full trade list, paged (`trades_offset`, `trades_limit`; `next_trades_offset` is null on the last
    page). Another principal's id answers NOT_FOUND."""
    stored = await ctx.services.backtests.get(ctx.principal.subject, backtest_id)
    if stored is None:
        raise NotFoundError(f"No backtest {backtest_id!r} of yours.", context={"argument": "backtest_id"})
    return stored_backtest_out(stored, trades_offset, trades_limit)


@tool(output=BacktestList, scope="read", title="My backtests", read_only=True, idempotent=True)
async def list_backtests(
    ctx: ToolContext,
    limit: Annotated[int, Field(ge=1, le=200, description="How many of your latest backtests to list.")] = 20,
) -> BacktestList:
    """List YOUR stored backtests, newest first: id, time, strategy, symbol, data source and headline
    metrics (final equity, total return, Sharpe, max drawdown, trades). get_backtest reads one in full."""
    rows = await ctx.services.backtests.recent(ctx.principal.subject, limit)
    return BacktestList(
        principal=ctx.principal.subject,
        backtests=[
            BacktestSummaryOut(
                backtest_id=r.id,
                created_at=r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC),
                strategy=r.strategy,
                symbol=r.symbol,
                timeframe=r.timeframe,
                data_source=r.data_source,
                final_equity=r.metrics.get("final_equity"),
                total_return=r.metrics.get("total_return"),
                sharpe=r.metrics.get("sharpe"),
                max_drawdown=r.metrics.get("max_drawdown"),
                num_trades=r.metrics.get("num_trades"),
            )
            for r in rows
        ],
    )


TOOLS = [list_strategies, get_strategy_info, run_backtest, get_backtest, list_backtests]
