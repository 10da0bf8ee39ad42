"""optimize_strategy: search a strategy's parameter grid on a training span, report out-of-sample.

The grid (``param_grid`` values or ``param_ranges``) is bounded (`MAX_COMBINATIONS`). Each
combination is backtested on the first ``train_fraction`` of the bars; the best by the objective
are then run on the remaining bars, so in-sample and out-of-sample figures sit side by side and
overfitting shows. sma_crossover uses the compiled sweep; other strategies run in chunks. Nothing
is stored.

Budgets, checked before any work (for synthetic and Alpaca data from the range, before loading;
for files right after loading, before any backtest), each refused with VALIDATION_ERROR naming
what to shrink:

- work = train bars x combinations + test bars x top_n <= ``NT_OPTIMIZE_MAX_WORK`` (bar-evaluations);
- memory ~ bars x `BYTES_PER_BAR` + one sweep chunk (`sweep.MAX_CHUNK_BYTES`) + the averages a sweep keeps
  between chunks (`sweep.SMA_CACHE_BYTES`) <= ``NT_CALL_MEMORY_MB``.

The CPU work runs in a worker thread chunk by chunk (chunks cut by memory and by work, see
`domain.backtest.sweep.plan_sweep`; other strategies by work), with MCP progress notifications
between chunks. A deadline (TIMEOUT) or a client's cancellation stops the call between two chunks:
the chunk running finishes within about a second and its arrays are freed, so no sweep outlives
its call.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies import StrategySpec
from nt_mcp.errors import ValidationError
from nt_mcp.infra.memory import release_free_memory
from nt_mcp.tools.backtesting import (
    CONVENTIONS,
    CashArg,
    CommissionArg,
    CommissionFixedArg,
    DataProvenance,
    EndArg,
    ParamValue,
    SizeArg,
    SizingArg,
    SlippageArg,
    SourceArg,
    StartArg,
    StopArg,
    StrategyArg,
    SymbolArg,
    TakeProfitArg,
    TimeframeArg,
    TrailingArg,
    _config,
    _dt,
    _finite,
    _load,
    _provenance,
    _range,
    _run,
    strategy_spec,
)
from nt_mcp.tools.costs import bars_in_range, estimated_bars
from nt_mcp.tools.registry import ToolContext, tool

if TYPE_CHECKING:  # the compiled sweep and metrics (numba) load on the first optimisation, not with the tool list
    from nt_mcp.domain.backtest.metrics import Metrics
    from nt_mcp.domain.backtest.sweep import SmaCache

MAX_COMBINATIONS = 2000
# Peak bytes per bar of an optimisation besides the sweep chunk: the loaded bars with their
# validation (~62 B measured for synthetic 1-minute bars) and one full backtest of the loop path
# (~90 B). Measured peaks stay under this estimate (tests/integration/test_bounds.py).
BYTES_PER_BAR = 160
Objective = Literal[
    "sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "profit_factor", "win_rate", "expectancy"
]


class RangeSpec(BaseModel):
    start: float = Field(description="first value")
    stop: float = Field(description="last value (inclusive, if the steps land on it)")
    step: float = Field(gt=0, description="increment")


class MetricsBrief(BaseModel):
    objective: float | None
    total_return: float | None
    cagr: float | None
    sharpe: float | None
    max_drawdown: float | None
    win_rate: float | None
    num_trades: int
    final_equity: float


class RankedParams(BaseModel):
    rank: int = Field(description="1 = best in-sample objective")
    params: dict[str, ParamValue]
    in_sample: MetricsBrief
    out_of_sample: MetricsBrief


class SplitOut(BaseModel):
    bars: int
    first_timestamp: datetime
    last_timestamp: datetime


class OptimizationReport(BaseModel):
    strategy: str
    symbol: str
    objective: str
    combinations: int = Field(description="size of the grid")
    evaluated: int = Field(description="valid combinations backtested on the training bars")
    skipped_invalid: int = Field(description="combinations the strategy refuses (e.g. slow <= fast)")
    method: Literal["sma_sweep", "loop"]
    train: SplitOut
    test: SplitOut
    top: list[RankedParams] = Field(description="best by in-sample objective, with their out-of-sample figures")
    overfitting_note: str
    data: DataProvenance
    conventions: str
    elapsed_s: float


def _brief(m: Metrics, objective: str) -> MetricsBrief:
    return MetricsBrief(
        objective=_finite(getattr(m, objective)),
        total_return=_finite(m.total_return),
        cagr=_finite(m.cagr),
        sharpe=_finite(m.sharpe),
        max_drawdown=_finite(m.max_drawdown),
        win_rate=_finite(m.win_rate),
        num_trades=m.n_trades,
        final_equity=m.final_equity,
    )


# ---------------------------------------------------------------- optimisation


def _expand(name: str, r: RangeSpec) -> list[float]:
    if r.stop < r.start:
        raise ValidationError(f"param_ranges.{name}: stop {r.stop} is below start {r.start}", argument="param_ranges")
    count = math.floor((r.stop - r.start) / r.step + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise ValidationError(
            f"param_ranges.{name} alone has {count:,} values; the grid may hold at most {MAX_COMBINATIONS:,} "
            "combinations",
            argument="param_grid",
        )
    return [r.start + k * r.step for k in range(count)]


def _grid(
    spec: StrategySpec,
    param_grid: Mapping[str, Sequence[ParamValue]] | None,
    param_ranges: Mapping[str, RangeSpec] | None,
    fixed: Mapping[str, Any] | None,
) -> dict[str, list[Any]]:
    """Each grid parameter's values, checked against the strategy's parameters and bounds."""
    if not param_grid and not param_ranges:
        raise ValidationError(
            "give param_grid (values per parameter) or param_ranges (start/stop/step per parameter)",
            argument="param_grid",
        )
    by_name = {p.name: p for p in spec.params}
    raw: dict[str, list[Any]] = {}
    for name, values in (param_grid or {}).items():
        raw[name] = list(values)
    for name, r in (param_ranges or {}).items():
        if name in raw:
            raise ValidationError(f"{name!r} is in both param_grid and param_ranges", argument="param_ranges")
        raw[name] = _expand(name, r)
    grid: dict[str, list[Any]] = {}
    for name, values in raw.items():
        if name not in by_name:
            raise ValidationError(
                f"{name!r} is not a parameter of {spec.name}; its parameters are {sorted(by_name)}",
                argument="param_grid",
            )
        if fixed and name in fixed:
            raise ValidationError(f"{name!r} is both fixed in params and searched in the grid", argument="params")
        if not values:
            raise ValidationError(f"param_grid.{name} has no values", argument="param_grid")
        try:
            grid[name] = list(dict.fromkeys(by_name[name].coerce(v) for v in values))
        except DomainValueError as error:
            raise ValidationError(f"param_grid.{name}: {error.message}", argument="param_grid") from None
    total = math.prod(len(v) for v in grid.values())
    limit = min(MAX_COMBINATIONS, spec.max_combinations or MAX_COMBINATIONS)
    if total > limit:
        raise ValidationError(
            f"the grid has {total:,} combinations; at most {limit:,} are allowed for {spec.name}: use fewer values "
            "or larger steps",
            argument="param_grid",
        )
    return grid


def _objective_value(m: Metrics, objective: str) -> float:
    value = float(getattr(m, objective))
    return value if math.isfinite(value) else -math.inf


def _split(bars: Bars, train_fraction: float) -> tuple[Bars, Bars]:
    cut = int(len(bars) * train_fraction)
    if cut < 2 or len(bars) - cut < 2:
        raise ValidationError(
            f"{len(bars)} bars split at {train_fraction} leaves too few bars on one side; load a longer range",
            argument="train_fraction",
        )
    return bars.slice(0, cut), bars.slice(cut, len(bars))


def _split_out(bars: Bars) -> SplitOut:
    first, last = _dt(bars.timestamps[0]), _dt(bars.timestamps[-1])
    assert first is not None and last is not None
    return SplitOut(bars=len(bars), first_timestamp=first, last_timestamp=last)


def _loop_chunk(
    bars: Bars, strategy: str, chunk: list[dict[str, Any]], cfg: BacktestConfig, stopped: threading.Event | None = None
) -> list[Metrics]:
    try:
        return [_run(bars, strategy, p, cfg).metrics for p in chunk]
    finally:
        if stopped is not None and stopped.is_set():  # the call is gone: nobody else will free its memory
            release_free_memory()


def _sweep_chunk(
    bars: Bars,
    pairs: list[tuple[int, int]],
    cfg: BacktestConfig,
    allow_short: bool,
    stopped: threading.Event,
    cache: SmaCache,
) -> dict[tuple[int, int], Metrics]:
    from nt_mcp.domain.backtest.sweep import sweep_pairs

    try:
        result = sweep_pairs(bars, pairs, cfg, allow_short=allow_short, cache=cache)
        return {(int(f), int(s)): m for f, s, m in zip(result.fast, result.slow, result.metrics, strict=True)}
    finally:
        if stopped.is_set():
            release_free_memory()


def _check_budget(ctx: ToolContext, bars: int, combinations: int, top_n: int, train_fraction: float) -> None:
    """Refuse, before any work, an optimisation over the work or memory budget (see the module)."""
    from nt_mcp.domain.backtest.sweep import MAX_CHUNK_BYTES, SMA_CACHE_BYTES, chunk_bytes

    settings = ctx.services.settings
    train = max(1, int(bars * train_fraction))
    work = train * combinations + (bars - train) * min(top_n, combinations)
    if work > settings.optimize_max_work:
        most_combinations = max(1, settings.optimize_max_work // max(1, bars))
        most_bars = settings.optimize_max_work // max(1, combinations)
        argument = "param_grid" if combinations > most_combinations or bars <= most_bars else "start"
        raise ValidationError(
            f"{bars:,} bars x {combinations:,} combinations is {work:,.0f} bar-evaluations, over the budget of "
            f"{settings.optimize_max_work:,} (NT_OPTIMIZE_MAX_WORK): use at most {most_combinations:,} "
            f"combinations on these bars (param_grid / param_ranges), or at most {most_bars:,} bars for this grid "
            "(a shorter start..end or a longer timeframe)",
            argument=argument,
        )
    need = bars * BYTES_PER_BAR + max(MAX_CHUNK_BYTES, chunk_bytes(train, [(1, 2)])) + SMA_CACHE_BYTES
    budget = settings.call_memory_mb * 2**20
    if need > budget:
        most_bars = max(0, (budget - MAX_CHUNK_BYTES - SMA_CACHE_BYTES) // (BYTES_PER_BAR + 24))
        raise ValidationError(
            f"{bars:,} bars need about {need / 2**20:,.0f} MB, over the per-call memory budget of "
            f"{settings.call_memory_mb:,} MB (NT_CALL_MEMORY_MB): use at most {most_bars:,} bars "
            "(a shorter start..end or a longer timeframe)",
            argument="start",
        )


async def _evaluate(
    ctx: ToolContext, spec: StrategySpec, train: Bars, combos: list[dict[str, Any]], cfg: BacktestConfig
) -> tuple[list[Metrics], str]:
    """In-sample metrics for every combination, chunk by chunk in a worker thread, reporting progress
    after each chunk. Each ``await`` between chunks is where a deadline or a cancellation stops it."""
    stopped = threading.Event()  # set when the call is stopped: the chunk still running frees its memory
    try:
        return await _evaluate_chunks(ctx, spec, train, combos, cfg, stopped)
    except asyncio.CancelledError:
        stopped.set()
        raise


async def _evaluate_chunks(
    ctx: ToolContext,
    spec: StrategySpec,
    train: Bars,
    combos: list[dict[str, Any]],
    cfg: BacktestConfig,
    stopped: threading.Event,
) -> tuple[list[Metrics], str]:
    from nt_mcp.domain.backtest.sweep import MAX_CHUNK_WORK, SmaCache, plan_sweep

    total = len(combos)
    await ctx.report_progress(0, total, f"0/{total} parameter sets backtested on the training bars")
    if spec.name == "sma_crossover" and all(c["slow"] < len(train) for c in combos):
        results: dict[tuple[int, int, bool], Metrics] = {}
        groups: dict[bool, tuple[list[int], list[int]]] = {}
        for c in combos:
            fasts, slows = groups.setdefault(c["allow_short"], ([], []))
            if c["fast"] not in fasts:
                fasts.append(c["fast"])
            if c["slow"] not in slows:
                slows.append(c["slow"])
        done = 0
        for allow_short, (fasts, slows) in groups.items():
            try:
                chunks = plan_sweep(fasts, slows, len(train))
            except DomainValueError as error:
                raise ValidationError(f"param_grid: {error.message}", argument="param_grid") from None
            cache = SmaCache(train)  # the averages, computed once for all chunks (up to SMA_CACHE_BYTES)
            for chunk in chunks:
                out = await asyncio.to_thread(_sweep_chunk, train, chunk, cfg, allow_short, stopped, cache)
                results.update({(f, s, allow_short): m for (f, s), m in out.items()})
                done += len(out)
                await ctx.report_progress(min(done, total), total, f"{min(done, total)}/{total} parameter sets")
        return [results[(c["fast"], c["slow"], c["allow_short"])] for c in combos], "sma_sweep"
    metrics: list[Metrics] = []
    step = max(1, min(math.ceil(total / 20), MAX_CHUNK_WORK // max(1, len(train))))
    for i in range(0, total, step):
        metrics.extend(await asyncio.to_thread(_loop_chunk, train, spec.name, combos[i : i + step], cfg, stopped))
        await ctx.report_progress(len(metrics), total, f"{len(metrics)}/{total} parameter sets")
    return metrics, "loop"


def optimization_cost(arguments: Mapping[str, Any]) -> int:
    """Rate-limit units of one call: 5, plus 1 per 100 million bar-evaluations its grid and range imply."""
    combinations = 1
    for values in (arguments.get("param_grid") or {}).values():
        combinations *= max(1, len(values))
    for r in (arguments.get("param_ranges") or {}).values():
        start, stop, step = (getattr(r, name, None) for name in ("start", "stop", "step"))
        if isinstance(start, float | int) and isinstance(stop, float | int) and isinstance(step, float | int) and step:
            combinations *= max(1, min(MAX_COMBINATIONS, int((stop - start) / step) + 1))
    bars = bars_in_range(arguments)
    return 5 + min(combinations, MAX_COMBINATIONS) * bars // 100_000_000


@tool(
    output=OptimizationReport,
    scope="backtest",
    title="Optimise strategy parameters",
    cost=optimization_cost,
    read_only=True,
    open_world=True,
)
async def optimize_strategy(
    ctx: ToolContext,
    strategy: StrategyArg,
    symbol: SymbolArg,
    param_grid: Annotated[
        dict[str, list[ParamValue]] | None,
        Field(description="Values to try per parameter, e.g. {'fast': [5, 10, 20], 'slow': [50, 100]}."),
    ] = None,
    param_ranges: Annotated[
        dict[str, RangeSpec] | None,
        Field(description="Inclusive ranges per parameter, e.g. {'fast': {'start': 5, 'stop': 50, 'step': 5}}."),
    ] = None,
    objective: Annotated[Objective, Field(description="Metric to maximise on the training bars.")] = "sharpe",
    train_fraction: Annotated[
        float, Field(ge=0.1, le=0.95, description="Share of the bars (the earliest) used to pick parameters.")
    ] = 0.7,
    top_n: Annotated[int, Field(ge=1, le=20, description="How many of the best parameter sets to report.")] = 5,
    params: Annotated[
        dict[str, ParamValue] | None, Field(description="Parameters held fixed (not searched); others default.")
    ] = None,
    start: StartArg = None,
    end: EndArg = None,
    timeframe: TimeframeArg = "1Day",
    data_source: SourceArg = None,
    initial_cash: CashArg = 10_000.0,
    commission: CommissionArg = 0.0,
    commission_per_order: CommissionFixedArg = 0.0,
    slippage_bps: SlippageArg = 0.0,
    sizing: SizingArg = "fraction",
    size: SizeArg = 1.0,
    stop_loss: StopArg = None,
    take_profit: TakeProfitArg = None,
    trailing_stop: TrailingArg = None,
) -> OptimizationReport:
    """Search a strategy's parameters on a train/test split and show whether the winners hold up.

    The earliest `train_fraction` of the bars picks parameters: every combination of `param_grid` /
    `param_ranges` (at most 2000; combinations the strategy refuses, like slow <= fast, are skipped) is
    backtested there and ranked by `objective` (all objectives are maximised; max_drawdown is negative,
    so closer to 0 wins). The `top_n` sets are then backtested on the remaining, later bars (indicators
    warm up again inside that window) and both in-sample and out-of-sample figures are returned: a large
    drop out of sample means the parameters fitted noise. sma_crossover grids run in one compiled sweep.
    Sends MCP progress notifications while it runs and stops between chunks when cancelled. Same fill
    conventions as run_backtest. Nothing is stored. Budgets (checked before any work): bars x
    combinations within NT_OPTIMIZE_MAX_WORK and the estimated memory within NT_CALL_MEMORY_MB; an
    over-budget call answers VALIDATION_ERROR saying how many combinations or bars would fit."""
    started = time.perf_counter()
    spec = strategy_spec(strategy)
    if params:
        unknown = sorted(set(params) - {p.name for p in spec.params})
        if unknown:
            raise ValidationError(f"{unknown[0]!r} is not a parameter of {spec.name}", argument="params")
    grid = _grid(spec, param_grid, param_ranges, params)
    if start is not None and end is not None and start > end:
        raise ValidationError(f"start ({start.isoformat()}) is after end ({end.isoformat()})", argument="start")
    cfg = _config(
        initial_cash, commission, commission_per_order, slippage_bps, sizing, size,
        stop_loss, take_profit, trailing_stop, False,
    )  # fmt: skip
    names = list(grid)
    combos: list[dict[str, Any]] = []
    skipped = 0
    first_refusal: DomainValueError | None = None
    for values in itertools.product(*(grid[n] for n in names)):
        try:
            combos.append(spec.validate({**(params or {}), **dict(zip(names, values, strict=True))}))
        except DomainValueError as error:
            skipped += 1
            first_refusal = first_refusal or error
    if not combos:
        reason = f" (e.g. {first_refusal})" if first_refusal else ""
        raise ValidationError(f"no combination in the grid is valid{reason}", argument="param_grid")
    source = ctx.services.market_hub.get(data_source).source
    if source != "files":  # the range says how many bars: refuse an over-budget call before loading
        start_u, end_u = _range(source, timeframe, start, end)
        _check_budget(ctx, estimated_bars(timeframe, start_u, end_u), len(combos), top_n, train_fraction)
    market, bars = await _load(ctx, data_source, symbol, timeframe, start, end)
    _check_budget(ctx, len(bars), len(combos), top_n, train_fraction)
    train, test = _split(bars, train_fraction)
    await ctx.log(
        "info",
        f"optimize_strategy: {len(combos)} parameter sets on {len(train):,} training bars of {symbol} "
        f"({market.source}), {len(test):,} bars held out",
    )
    in_sample, method = await _evaluate(ctx, spec, train, combos, cfg)
    order = sorted(range(len(combos)), key=lambda i: _objective_value(in_sample[i], objective), reverse=True)
    best = order[:top_n]
    await ctx.log("info", f"optimize_strategy: re-running the best {len(best)} on the held-out bars")
    out_of_sample = await asyncio.to_thread(_loop_chunk, test, spec.name, [combos[i] for i in best], cfg)
    top = [
        RankedParams(
            rank=rank,
            params=combos[i],
            in_sample=_brief(in_sample[i], objective),
            out_of_sample=_brief(oos, objective),
        )
        for rank, (i, oos) in enumerate(zip(best, out_of_sample, strict=True), start=1)
    ]
    return OptimizationReport(
        strategy=spec.name,
        symbol=symbol,
        objective=objective,
        combinations=len(combos) + skipped,
        evaluated=len(combos),
        skipped_invalid=skipped,
        method=method,
        train=_split_out(train),
        test=_split_out(test),
        top=top,
        overfitting_note=(
            "Parameters were chosen on the train bars only. Compare each set's in_sample and out_of_sample "
            f"{objective}: the best in-sample set is often not the best out of sample, and a large drop means "
            "the search fitted noise. More combinations searched = more chance of a lucky in-sample winner."
        ),
        data=_provenance(market, symbol, timeframe, bars),
        conventions=CONVENTIONS,
        elapsed_s=round(time.perf_counter() - started, 4),
    )


TOOLS = [optimize_strategy]
