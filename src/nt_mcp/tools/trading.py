"""Broker tools: account, positions, orders, quotes; placing, cancelling and closing.

Every result states ``mode`` (paper or live), ``broker`` (paper or alpaca) and, where prices are
involved, ``price_source`` (synthetic prices are not real). Money, prices and quantities are
decimal strings in results (exact; parse them as decimals). Orders carry ``id`` (the broker's id:
use it with get_order and cancel_order) and ``client_order_id`` (derived from the idempotency key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias

from pydantic import BaseModel, Field

from nt_mcp.adapters.brokers.base import Account, Order, Position
from nt_mcp.errors import ValidationError
from nt_mcp.services.order_router import OrderParams, Placed, normalise_symbol
from nt_mcp.services.strategy_executor import ExecutionRequest
from nt_mcp.tools.arguments import DATETIME_HELP, EARLIEST, OptionalUtcDateTime, Text, bounded_decimal
from nt_mcp.tools.backtesting import strategy_spec, validated_params
from nt_mcp.tools.costs import get_bars_cost
from nt_mcp.tools.registry import ToolContext, tool

Mode = Literal["paper", "live"]
# Argument types (nt_mcp.tools.arguments): decimals within sane ranges at the brokers' precision (shares
# to 1e-9, dollars to the cent, prices to 1e-4); strings without control characters. mypy sees the plain types.
if TYPE_CHECKING:
    Qty: TypeAlias = Decimal
    Notional: TypeAlias = Decimal
    Price: TypeAlias = Decimal
    TrailPercent: TypeAlias = Decimal
    Percentage: TypeAlias = Decimal
    Fraction: TypeAlias = Decimal
    Symbol: TypeAlias = str
    OrderId: TypeAlias = str
    KeyText: TypeAlias = str
    StrategyName: TypeAlias = str
else:
    Qty = bounded_decimal(minimum=0, maximum=100_000_000, max_places=9)
    Notional = bounded_decimal(minimum=0, maximum=1_000_000_000, max_places=2)
    Price = bounded_decimal(minimum=0, maximum=1_000_000, max_places=4)
    TrailPercent = bounded_decimal(minimum=0, maximum="99.99", max_places=2)
    Percentage = bounded_decimal(minimum=0, maximum=100, max_places=4)
    Fraction = bounded_decimal(minimum=0, maximum=1, max_places=4)
    Symbol, OrderId, KeyText, StrategyName = Text(16), Text(128), Text(100), Text(64)
IDEMPOTENCY_KEY_HELP = (
    "Your key for this request. Calling again with the same key (and the same arguments) returns the first "
    "result instead of acting twice, also while the first call is still running; the same key with other "
    "arguments is refused (IDEMPOTENCY_KEY_REUSED). Omit it and a fresh key is generated and returned."
)
IdempotencyKey = Annotated[KeyText | None, Field(description=IDEMPOTENCY_KEY_HELP)]


class Trading(BaseModel):
    mode: Mode = Field(description="paper (simulated or Alpaca paper) or live (real money)")
    broker: str = Field(description="paper (this server's simulated account) or alpaca")


class Priced(Trading):
    price_source: str = Field(description="where prices come from: synthetic (not real), alpaca, files")


def _trading(ctx: ToolContext) -> dict[str, str]:
    s = ctx.services
    source = "alpaca" if s.broker.name == "alpaca" else s.market_data.source
    return {"mode": s.settings.mode, "broker": s.broker.name, "price_source": source}


class AccountResult(Priced, Account):
    pass


@tool(output=AccountResult, scope="read", title="Account", read_only=True)
async def get_account(ctx: ToolContext) -> AccountResult:
    """The trading account: equity, cash, buying power, equity at the start of the day and the day's
    P&L, plus mode (paper/live), broker and price source. On the paper broker, resting orders are
    first checked against the latest prices (they fill when a price crosses them)."""
    account = await ctx.services.broker.get_account(ctx.principal.subject)
    return AccountResult(**account.model_dump(), **_trading(ctx))


class PositionsResult(Priced):
    positions: list[Position]
    count: int


@tool(output=PositionsResult, scope="read", title="Positions", read_only=True)
async def get_positions(ctx: ToolContext) -> PositionsResult:
    """Open positions: symbol, signed qty, average entry price, current price, market value,
    unrealised P&L (and realised P&L on the paper broker)."""
    positions = await ctx.services.broker.get_positions(ctx.principal.subject)
    return PositionsResult(positions=positions, count=len(positions), **_trading(ctx))


class OrdersResult(Priced):
    orders: list[Order]
    count: int


@tool(output=OrdersResult, scope="read", title="Orders", read_only=True)
async def get_orders(
    ctx: ToolContext,
    status: Annotated[
        Literal["open", "closed", "all"], Field(description="open (may still fill), closed, or all")
    ] = "open",
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many, newest first.")] = 50,
) -> OrdersResult:
    """List orders, newest first, with their status, filled quantity and average fill price."""
    found = await ctx.services.broker.get_orders(ctx.principal.subject, status, limit)
    return OrdersResult(orders=found, count=len(found), **_trading(ctx))


class OrderResult(Priced):
    order: Order


@tool(output=OrderResult, scope="read", title="One order", read_only=True)
async def get_order(
    ctx: ToolContext,
    order_id: Annotated[OrderId | None, Field(description="The order's id.")] = None,
    client_order_id: Annotated[OrderId | None, Field(description="Or the order's client_order_id.")] = None,
) -> OrderResult:
    """One order by its id or by its client_order_id (give exactly one). By client_order_id, an order
    whose sending is still being resolved shows as pending_submit (or submit_failed: not placed; call
    place_order again with the same idempotency_key)."""
    if (order_id is None) == (client_order_id is None):
        raise ValidationError("Give exactly one of order_id and client_order_id.", argument="order_id")
    who = ctx.principal.subject
    if order_id is not None:
        order = await ctx.services.broker.get_order(who, order_id)
    else:
        assert client_order_id is not None
        order = await ctx.services.orders.find_order(who, client_order_id)
    return OrderResult(order=order, **_trading(ctx))


class QuoteResult(Priced):
    symbol: str
    price: Decimal = Field(description="mid of bid and ask when both are known, else the last price")
    bid: Decimal | None
    ask: Decimal | None
    timestamp: datetime


@tool(output=QuoteResult, scope="read", title="Latest quote", read_only=True)
async def get_quote(
    ctx: ToolContext,
    symbol: Annotated[Symbol, Field(description="Ticker, e.g. AAPL.")],
) -> QuoteResult:
    """The latest price of a symbol from the configured market data source (price_source says which;
    synthetic prices are generated, not real)."""
    quote = await ctx.services.broker.latest_quote(normalise_symbol(symbol))
    trading = _trading(ctx) | {"price_source": quote.source}
    return QuoteResult(
        symbol=quote.symbol,
        price=quote.price,
        bid=quote.bid,
        ask=quote.ask,
        timestamp=quote.timestamp,
        **trading,
    )


class Bar(BaseModel):
    t: datetime
    o: float
    h: float
    l: float  # noqa: E741 - the OHLCV convention
    c: float
    v: float


class BarsResult(Priced):
    symbol: str
    timeframe: str
    bars: list[Bar] = Field(description="oldest first; the latest `limit` bars of the range")
    count: int


@tool(output=BarsResult, scope="read", title="Price bars", read_only=True, cost=get_bars_cost)
async def get_bars(
    ctx: ToolContext,
    symbol: Annotated[Symbol, Field(description="Ticker, e.g. AAPL.")],
    timeframe: Annotated[Literal["1Min", "5Min", "15Min", "1Hour", "1Day"], Field(description="Bar size.")] = "1Day",
    start: Annotated[
        OptionalUtcDateTime,
        Field(description=f"First bar ({DATETIME_HELP}). Default: none (the latest `limit` bars up to end)."),
    ] = None,
    end: Annotated[OptionalUtcDateTime, Field(description=f"Last bar ({DATETIME_HELP}). Default: now.")] = None,
    limit: Annotated[int, Field(ge=1, le=10_000, description="At most this many bars (the latest).")] = 100,
) -> BarsResult:
    """OHLCV bars of a symbol from the configured market data source (price_source says which;
    synthetic bars are generated, not real)."""
    end = end or datetime.now(UTC)
    start = start or EARLIEST  # the sources generate or fetch only the latest `limit` bars
    if start >= end:
        raise ValidationError("start must be before end.", argument="start")
    data = ctx.services.market_data
    bars = await data.get_bars(normalise_symbol(symbol), timeframe, start, end, limit=limit)  # only what is shown
    n = len(bars.close)
    first = max(0, n - limit)
    stamps = bars.timestamps[first:].astype("datetime64[us]").tolist()
    rows = [
        Bar(t=stamps[i].replace(tzinfo=UTC), o=bars.open[first + i], h=bars.high[first + i],
            l=bars.low[first + i], c=bars.close[first + i], v=bars.volume[first + i])
        for i in range(n - first)
    ]  # fmt: skip
    trading = _trading(ctx) | {"price_source": data.source}
    return BarsResult(symbol=normalise_symbol(symbol), timeframe=timeframe, bars=rows, count=len(rows), **trading)


class RiskCheck(BaseModel):
    code: str
    passed: bool
    detail: str


class PlacedResult(Priced):
    order: Order
    idempotency_key: str = Field(description="send it again to get this same order back, never a second")
    replayed: bool = Field(description="true: this key was used before; this is the first order, unchanged")
    risk_checks: list[RiskCheck] = Field(description="the pre-trade checks this order passed (empty on a replay)")


def _placed(ctx: ToolContext, placed: Placed) -> PlacedResult:
    return PlacedResult(
        order=placed.order,
        idempotency_key=placed.idempotency_key,
        replayed=placed.replayed,
        risk_checks=[RiskCheck(code=c.code, passed=c.passed, detail=c.detail) for c in placed.checks],
        **_trading(ctx),
    )


@tool(output=PlacedResult, scope="trade", title="Place an order", destructive=True, open_world=True)
async def place_order(
    ctx: ToolContext,
    symbol: Annotated[Symbol, Field(description="Ticker, e.g. AAPL.")],
    side: Annotated[
        Literal["buy", "sell"],
        Field(description="buy or sell; on the paper broker a sell beyond the position opens a short"),
    ],
    qty: Annotated[Qty | None, Field(description="Shares (fractions to 1e-9). Or give notional.")] = None,
    notional: Annotated[
        Notional | None, Field(description="Dollar amount instead of qty (market orders, day only).")
    ] = None,
    type: Annotated[
        Literal["market", "limit", "stop", "stop_limit", "trailing_stop"], Field(description="Order type.")
    ] = "market",
    limit_price: Annotated[Price | None, Field(description="For limit and stop_limit.")] = None,
    stop_price: Annotated[Price | None, Field(description="For stop and stop_limit.")] = None,
    trail_percent: Annotated[TrailPercent | None, Field(description="For trailing_stop (Alpaca only).")] = None,
    time_in_force: Annotated[
        Literal["day", "gtc", "opg", "cls", "ioc", "fok"], Field(description="How long the order lives.")
    ] = "day",
    take_profit: Annotated[
        Price | None,
        Field(description="Bracket order (Alpaca only): the take-profit limit price; needs stop_loss."),
    ] = None,
    stop_loss: Annotated[
        Price | None,
        Field(description="Bracket order (Alpaca only): the stop-loss stop price; needs take_profit."),
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> PlacedResult:
    """Place an order (moves money; paper unless the server is in live mode: see mode). Before it is
    sent: the arguments are validated (nothing is sent if one is wrong; the error names it) and the
    pre-trade risk checks run (each refusal has its own code, e.g. RISK_MAX_NOTIONAL, MARKET_CLOSED).
    The order is journaled before it is sent and never sent twice: reuse idempotency_key to retry
    safely after any error (concurrent calls with one key send once; the others get that order with
    replayed=true). Returns the order, the idempotency key and the checks it passed."""
    params = OrderParams(
        symbol=symbol,
        side=side,
        type=type,
        qty=qty,
        notional=notional,
        time_in_force=time_in_force,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_percent=trail_percent,
        take_profit_limit_price=take_profit,
        stop_loss_stop_price=stop_loss,
    )
    return _placed(ctx, await ctx.services.orders.place(ctx.principal.subject, params, idempotency_key))


@tool(output=OrderResult, scope="trade", title="Cancel an order", destructive=True, idempotent=True)
async def cancel_order(
    ctx: ToolContext,
    order_id: Annotated[OrderId, Field(description="The order's id.")],
) -> OrderResult:
    """Cancel an open order by its id. Returns the order's state afterwards (canceled, or
    pending_cancel at Alpaca). An order that already filled cannot be canceled."""
    order = await ctx.services.broker.cancel_order(ctx.principal.subject, order_id)
    return OrderResult(order=order, **_trading(ctx))


@tool(output=PlacedResult, scope="trade", title="Close a position", destructive=True, open_world=True)
async def close_position(
    ctx: ToolContext,
    symbol: Annotated[Symbol, Field(description="Ticker of the position.")],
    qty: Annotated[Qty | None, Field(description="Close this many shares.")] = None,
    percentage: Annotated[Percentage | None, Field(description="Or close this percentage of it (default 100).")] = None,
    idempotency_key: IdempotencyKey = None,
) -> PlacedResult:
    """Close all or part of a position with a market order on the opposite side. It goes through
    the same journal as place_order (idempotent with idempotency_key); reducing a position passes
    the exposure risk limits, but the orders-per-day cap and market hours still apply."""
    placed = await ctx.services.orders.close_position(ctx.principal.subject, symbol, qty, percentage, idempotency_key)
    return _placed(ctx, placed)


MARKET_TOOLS = [get_bars, get_quote]  # the "market" toolset: prices only, no account

TOOLS = [
    get_account,
    get_positions,
    get_orders,
    get_order,
    place_order,
    cancel_order,
    close_position,
]


class SymbolSignal(BaseModel):
    direction: int = Field(description="the strategy's position now: 1 long, -1 short, 0 flat")
    last_price: Decimal = Field(description="close of the last bar: the price the target is sized at")
    last_bar: str = Field(description="time of the last bar (UTC)")
    bars: int = Field(description="bars the signal was computed on")
    source: str = Field(description="market data source of the bars (synthetic prices are not real)")
    target_qty: Decimal
    current_qty: Decimal


class PlannedOrder(BaseModel):
    symbol: str
    side: str
    qty: Decimal
    type: str
    idempotency_key: str
    state: Literal["planned", "refused", "submitted", "failed"] = Field(
        description="planned (passed the risk checks; a dry run sends nothing), refused by a risk check, "
        "submitted to the broker, or failed to submit"
    )
    risk_checks: list[RiskCheck] = Field(
        default_factory=list, description="every pre-trade check's result; a refused order has one that failed"
    )
    error: dict[str, str] | None = Field(None, description="code and message when refused or failed")
    order_id: str | None = None
    client_order_id: str | None = None
    status: str | None = Field(None, description="the broker's order status once submitted")
    filled_qty: Decimal | None = None
    filled_avg_price: Decimal | None = None
    notes: list[str] = Field(default_factory=list, description="what the broker assumed, e.g. short borrow terms")


class StrategyRunResult(Trading):
    run_id: str
    strategy: str
    params: dict[str, float | int | bool]
    dry_run: bool
    status: Literal["planned", "executed", "partial", "refused", "failed"] = Field(
        description="planned: a dry run whose orders all pass the risk checks; executed: every order sent; "
        "partial: some orders refused or failed; refused: every order refused by a risk check; failed: none "
        "sent and some failed at the broker"
    )
    replayed: bool = Field(description="true: this idempotency_key ran before; this is that run's record")
    signals: dict[str, SymbolSignal]
    orders: list[PlannedOrder]
    created_at: datetime


@tool(
    output=StrategyRunResult,
    scope="trade",
    title="Run a strategy on the account",
    destructive=True,
    open_world=True,
    cost=5,
)
async def execute_strategy(
    ctx: ToolContext,
    strategy: Annotated[StrategyName, Field(description="A name from list_strategies.")],
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=20, description='Tickers to trade, e.g. ["SPY"].')],
    params: Annotated[
        dict[str, float | int | bool] | None, Field(description="Strategy parameters (see get_strategy_info).")
    ] = None,
    capital_fraction: Annotated[
        Fraction,
        Field(
            description="Share of equity the strategy may hold, split equally across symbols. The default 0.2 fits "
            "within the default risk limits (25,000 per order, 25% of equity per position) on a new paper account."
        ),
    ] = Decimal("0.2"),
    timeframe: Annotated[Literal["1Min", "5Min", "15Min", "1Hour", "1Day"], Field(description="Bar size.")] = "1Day",
    lookback_bars: Annotated[int, Field(ge=20, le=5000, description="Recent bars to compute the signal on.")] = 300,
    dry_run: Annotated[bool, Field(description="true (default): only plan. false: send the orders.")] = True,
    idempotency_key: IdempotencyKey = None,
) -> StrategyRunResult:
    """Compute a strategy's current signal on recent bars for each symbol, size target positions
    (whole shares; budget = equity x capital_fraction / symbols), diff them against the current
    positions and run the pre-trade risk checks on each resulting market order (each planned order
    lists every check's result; a refused one names the check). dry_run=true (the default) returns
    the plan and sends nothing; dry_run=false sends the orders that passed. A short target sells short
    (paper broker: easy to borrow assumed). Every run is recorded. Reusing idempotency_key returns the
    recorded run instead of trading again; with different arguments (a dry run's key for a real run
    included) it is refused with IDEMPOTENCY_KEY_REUSED."""
    spec = strategy_spec(strategy)
    record, replayed = await ctx.services.executor.execute(
        ExecutionRequest(
            principal=ctx.principal.subject,
            strategy=spec,
            symbols=symbols,
            params=validated_params(spec, params),
            capital_fraction=capital_fraction,
            timeframe=timeframe,
            lookback_bars=lookback_bars,
            dry_run=dry_run,
            idempotency_key=idempotency_key,
        )
    )
    return StrategyRunResult(
        run_id=record["id"],
        strategy=record["strategy"],
        params=record["params"],
        dry_run=record["dry_run"],
        status=record["status"],
        replayed=replayed,
        signals=record["signals"],
        orders=record["orders"],
        created_at=record["created_at"],
        mode=record["mode"],
        broker=ctx.services.broker.name,
    )


TOOLS.append(execute_strategy)
