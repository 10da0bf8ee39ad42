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
from nt_mcp.services.sweeps import Task
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
from nt_mcp.tools.jobs import JobStatus, start_background
from nt_mcp.tools.registry import ToolContext, tool

if TYPE_CHECKING:  # the compiled sweep and metrics (numba) load on the first optimisation, not with the tool list
    from nt_mcp.domain.backtest.metrics import Metrics
    from nt_mcp.domain.backtest.sweep import SmaCache

MAX_COMBINATIONS = 2000
MAX_SYMBOLS = 500  # symbols of one universe sweep
TICKER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
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


class SymbolOptimum(BaseModel):
    symbol: str
    train: SplitOut
    test: SplitOut
    top: list[RankedParams]
    data: DataProvenance


class UniverseRank(BaseModel):
    rank: int
    params: dict[str, ParamValue]
    in_sample_median: float | None
    in_sample_mean: float | None
    out_of_sample_median: float | None
    out_of_sample_mean: float | None
    symbols_defined: int = Field(description="symbols where in_sample is finite")


class UniverseReport(BaseModel):
    symbols: list[str]
    top: list[UniverseRank]
    per_symbol: list[SymbolOptimum]


class OptimizationReport(BaseModel):
    strategy: str
    symbol: str | None = Field(description="null for a universe (symbols)")
    objective: str
    combinations: int = Field(description="size of the grid")
    evaluated: int = Field(description="valid combinations backtested on the training bars")
    skipped_invalid: int = Field(description="combinations the strategy refuses (e.g. slow <= fast)")
    method: Literal["sma_sweep", "loop"] | None
    train: SplitOut | None = None
    test: SplitOut | None = None
    top: list[RankedParams] | None = None  # best by in-sample objective, with their out-of-sample figures
    universe: UniverseReport | None = None
    overfitting_note: str
    data: DataProvenance | None = None
    conventions: str
    executor: str | None = None  # where the sweep ran: in-process or dask
    job: JobStatus | None = Field(None, description="background=true: the queued job")
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


def _loop_chunk(bars: Bars, strategy: str, chunk: list[dict[str, Any]], cfg: BacktestConfig) -> list[Metrics]:
    """One task of a loop sweep: each parameter set of ``chunk`` backtested on ``bars``."""
    return [_run(bars, strategy, p, cfg).metrics for p in chunk]


def _sweep_chunk(
    bars: Bars, pairs: list[tuple[int, int]], cfg: BacktestConfig, allow_short: bool, cache: SmaCache | None
) -> dict[tuple[int, int], Metrics]:
    """One task of an SMA sweep: the compiled sweep over ``pairs`` (``cache``: the averages kept between
    the chunks of one symbol in this process; None on a cluster, where each task computes its own)."""
    from nt_mcp.domain.backtest.sweep import sweep_pairs

    result = sweep_pairs(bars, pairs, cfg, allow_short=allow_short, cache=cache)
    return {(int(f), int(s)): m for f, s, m in zip(result.fast, result.slow, result.metrics, strict=True)}


def _check_budget(
    ctx: ToolContext, bars: int, combinations: int, top_n: int, train_fraction: float, *, as_job: bool = False
) -> None:
    """Refuse, before any work, an optimisation over the work or memory budget (see the module). ``bars``:
    all symbols' bars together. A foreground call is bounded by NT_OPTIMIZE_MAX_WORK, a job (background=true
    or start_job) by NT_JOB_MAX_WORK; a foreground call within the job budget is told to run as a job."""
    from nt_mcp.domain.backtest.sweep import MAX_CHUNK_BYTES, SMA_CACHE_BYTES, chunk_bytes

    settings = ctx.services.settings
    as_job = as_job or ctx.in_job
    limit, setting = (
        (settings.job_max_work, "NT_JOB_MAX_WORK") if as_job else (settings.optimize_max_work, "NT_OPTIMIZE_MAX_WORK")
    )
    train = max(1, int(bars * train_fraction))
    work = train * combinations + (bars - train) * min(top_n, combinations)
    if work > limit:
        most_combinations = max(1, limit // max(1, bars))
        most_bars = limit // max(1, combinations)
        argument = "param_grid" if combinations > most_combinations or bars <= most_bars else "start"
        hint = (
            f" -- or run it as a job: background=true (or start_job), whose budget is {settings.job_max_work:,} "
            "(NT_JOB_MAX_WORK)"
            if not as_job and work <= settings.job_max_work
            else ""
        )
        raise ValidationError(
            f"{bars:,} bars x {combinations:,} combinations is {work:,.0f} bar-evaluations, over the budget of "
            f"{limit:,} ({setting}): use at most {most_combinations:,} "
            f"combinations on these bars (param_grid / param_ranges), or at most {most_bars:,} bars for this grid "
            f"(a shorter start..end, a longer timeframe or fewer symbols){hint}",
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


# pairs x bars per Dask task (8 x `sweep.MAX_CHUNK_WORK`): a few seconds of the compiled loop, so scheduling
# costs little next to it
DASK_CHUNK_FACTOR = 8


async def _run_tasks(ctx: ToolContext, by_symbol: list[list[Task]], total: int) -> list[list[Any]]:
    """Each symbol's task outputs. In-process, symbol after symbol (a symbol's cached averages are freed
    before the next one's are computed); on a cluster, every task at once. Progress: parameter sets done."""
    executor = ctx.services.sweeps
    n_tasks = sum(len(tasks) for tasks in by_symbol)
    offset = 0

    async def on_done(done: int, _: int) -> None:
        finished = offset + done
        sets = total if finished == n_tasks else total * finished // max(1, n_tasks)
        await ctx.report_progress(sets, total, f"{sets}/{total} parameter sets")

    if executor.name != "in-process":
        flat = await executor.map([task for tasks in by_symbol for task in tasks], on_done)
        outputs, at = [], 0
        for tasks in by_symbol:
            outputs.append(flat[at : at + len(tasks)])
            at += len(tasks)
        return outputs
    outputs = []
    for k, tasks in enumerate(by_symbol):
        outputs.append(await executor.map(tasks, on_done))
        offset += len(tasks)
        by_symbol[k] = []  # this symbol's cache goes with its tasks
    return outputs


async def _evaluate(
    ctx: ToolContext, spec: StrategySpec, trains: list[Bars], combos: list[dict[str, Any]], cfg: BacktestConfig
) -> tuple[list[list[Metrics]], str]:
    """In-sample metrics of every combination on every symbol's training bars, as tasks (symbol x
    parameter chunk) on the sweep executor (`nt_mcp.services.sweeps`), reporting progress as tasks
    finish. A deadline or a cancellation stops it between tasks (in-process) or cancels its futures."""
    from nt_mcp.domain.backtest.sweep import MAX_CHUNK_WORK, SmaCache, plan_sweep

    in_process = ctx.services.sweeps.name == "in-process"
    total = len(combos) * len(trains)
    await ctx.report_progress(0, total, f"0/{total} parameter sets backtested on the training bars")
    by_symbol: list[list[Task]] = [[] for _ in trains]
    if spec.name == "sma_crossover" and all(c["slow"] < len(t) for t in trains for c in combos):
        groups: dict[bool, tuple[list[int], list[int]]] = {}
        for c in combos:
            fasts, slows = groups.setdefault(c["allow_short"], ([], []))
            if c["fast"] not in fasts:
                fasts.append(c["fast"])
            if c["slow"] not in slows:
                slows.append(c["slow"])
        shorts: list[list[bool]] = [[] for _ in trains]
        for k, train in enumerate(trains):
            cache = SmaCache(train) if in_process else None  # averages computed once for all chunks
            for allow_short, (fasts, slows) in groups.items():
                try:
                    chunk_work = MAX_CHUNK_WORK if in_process else DASK_CHUNK_FACTOR * MAX_CHUNK_WORK
                    chunks = plan_sweep(fasts, slows, len(train), max_chunk_work=chunk_work)
                except DomainValueError as error:
                    raise ValidationError(f"param_grid: {error.message}", argument="param_grid") from None
                for chunk in chunks:
                    by_symbol[k].append((_sweep_chunk, (train, chunk, cfg, allow_short, cache)))
                    shorts[k].append(allow_short)
        outputs = await _run_tasks(ctx, by_symbol, total)
        metrics: list[list[Metrics]] = []
        for outs, allow in zip(outputs, shorts, strict=True):
            found = {(f, s, a): m for out, a in zip(outs, allow, strict=True) for (f, s), m in out.items()}
            metrics.append([found[(c["fast"], c["slow"], c["allow_short"])] for c in combos])
        return metrics, "sma_sweep"
    for k, train in enumerate(trains):
        step = max(1, min(math.ceil(len(combos) / 20), MAX_CHUNK_WORK // max(1, len(train))))
        for i in range(0, len(combos), step):
            by_symbol[k].append((_loop_chunk, (train, spec.name, combos[i : i + step], cfg)))
    outputs = await _run_tasks(ctx, by_symbol, total)
    return [[m for out in outs for m in out] for outs in outputs], "loop"


def optimization_cost(arguments: Mapping[str, Any]) -> int:
    """Rate-limit units of one call: 5, plus 1 per 100 million bar-evaluations its grid and range imply."""
    combinations = 1
    for values in (arguments.get("param_grid") or {}).values():
        combinations *= max(1, len(values))
    for r in (arguments.get("param_ranges") or {}).values():
        start, stop, step = (getattr(r, name, None) for name in ("start", "stop", "step"))
        if isinstance(start, float | int) and isinstance(stop, float | int) and isinstance(step, float | int) and step:
            combinations *= max(1, min(MAX_COMBINATIONS, int((stop - start) / step) + 1))
    symbols = arguments.get("symbols")
    bars = bars_in_range(arguments) * (max(1, len(symbols)) if isinstance(symbols, list) else 1)
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
    symbol: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=32,
            pattern=TICKER,
            description="Ticker, e.g. 'SPY'.",
        ),
    ] = None,
    symbols: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=32, pattern=TICKER)]] | None,
        Field(
            min_length=1,
            max_length=MAX_SYMBOLS,
            description="Instead of symbol: a universe searched with the same grid.",
        ),
    ] = None,
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
    background: Annotated[
        bool,
        Field(description="Run as a job: answer at once with `job`; get_job gives this report."),
    ] = False,
) -> OptimizationReport:
    """Search a strategy's parameters on a train/test split and show whether the winners hold up.

    Every combination of `param_grid` / `param_ranges` (at most 2000; ones the strategy refuses, like
    slow <= fast, are skipped) is backtested on the earliest `train_fraction` of the bars and ranked by
    `objective` (maximised; max_drawdown is negative, so closer to 0 wins); the `top_n` are re-run on the
    later bars, in- and out-of-sample side by side: a large drop means the search fitted noise.

    Universe: `symbols` (up to 500) instead of `symbol`; `universe.per_symbol` has each symbol's top_n.
    `universe.top` ranks sets across the universe by the MEDIAN over symbols of the in-sample objective
    (undefined = lowest; ties: mean where defined), with out-of-sample median and mean.

    Progress notifications; stops between chunks when cancelled. Same fill conventions as
    run_backtest. Nothing is stored. Budgets (checked first): bars (all symbols) x combinations within
    NT_OPTIMIZE_MAX_WORK (a job: NT_JOB_MAX_WORK), memory within NT_CALL_MEMORY_MB; over budget answers
    VALIDATION_ERROR saying what fits, or to use background=true. background=true queues a job and
    answers at once with only `job` set."""
    arguments = {name: value for name, value in locals().items() if name not in ("ctx", "background")}
    started = time.perf_counter()
    if (symbol is None) == (symbols is None):
        raise ValidationError("give either symbol (one ticker) or symbols (a universe), not both", argument="symbol")
    universe = list(dict.fromkeys(symbols)) if symbols is not None else [symbol or ""]
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
        estimate = estimated_bars(timeframe, start_u, end_u) * len(universe)
        _check_budget(ctx, estimate, len(combos), top_n, train_fraction, as_job=background)
    note = (
        "Parameters were chosen on the train bars only. Compare each set's in_sample and out_of_sample "
        f"{objective}: the best in-sample set is often not the best out of sample, and a large drop means "
        "the search fitted noise. More combinations searched = more chance of a lucky in-sample winner."
    )
    common: dict[str, Any] = {
        "strategy": spec.name,
        "objective": objective,
        "combinations": len(combos) + skipped,
        "evaluated": len(combos),
        "skipped_invalid": skipped,
        "overfitting_note": note,
        "conventions": CONVENTIONS,
    }
    if background:
        job = await start_background(ctx, "optimize_strategy", arguments)
        return OptimizationReport(
            **common, symbol=symbol, method=None, job=job, elapsed_s=round(time.perf_counter() - started, 4)
        )
    loaded = [await _load(ctx, data_source, name, timeframe, start, end) for name in universe]
    _check_budget(ctx, sum(len(bars) for _, bars in loaded), len(combos), top_n, train_fraction)
    splits = [_split(bars, train_fraction) for _, bars in loaded]
    await ctx.log(
        "info",
        f"optimize_strategy: {len(combos)} parameter sets on {sum(len(t) for t, _ in splits):,} training bars of "
        f"{len(universe)} symbol(s) ({loaded[0][0].source}), on {ctx.services.sweeps.name} workers",
    )
    in_sample, method = await _evaluate(ctx, spec, [train for train, _ in splits], combos, cfg)
    best = [_best(values, objective, top_n) for values in in_sample]
    across = _universe_best(in_sample, objective, top_n) if symbols is not None else []
    await ctx.log("info", "optimize_strategy: re-running the best on the held-out bars")
    per_symbol: list[SymbolOptimum] = []
    universe_oos: list[list[Metrics]] = []
    for k, ((market, bars), (train, test)) in enumerate(zip(loaded, splits, strict=True)):
        chosen = list(dict.fromkeys([*best[k], *across]))
        oos = dict(
            zip(
                chosen,
                await asyncio.to_thread(_loop_chunk, test, spec.name, [combos[i] for i in chosen], cfg),
                strict=True,
            )
        )
        universe_oos.append([oos[i] for i in across])
        top = [
            RankedParams(
                rank=rank,
                params=combos[i],
                in_sample=_brief(in_sample[k][i], objective),
                out_of_sample=_brief(oos[i], objective),
            )
            for rank, i in enumerate(best[k], start=1)
        ]
        per_symbol.append(
            SymbolOptimum(
                symbol=universe[k],
                train=_split_out(train),
                test=_split_out(test),
                top=top,
                data=_provenance(market, universe[k], timeframe, bars),
            )
        )
    elapsed = round(time.perf_counter() - started, 4)
    executor = ctx.services.sweeps.name
    if symbols is None:
        only = per_symbol[0]
        return OptimizationReport(
            **common, symbol=symbol, method=method, train=only.train, test=only.test, top=only.top, data=only.data,
            executor=executor, elapsed_s=elapsed,
        )  # fmt: skip
    ranks = [
        UniverseRank(
            rank=rank,
            params=combos[i],
            in_sample_median=_finite(_median([_objective_value(values[i], objective) for values in in_sample])),
            in_sample_mean=_mean_defined([_objective_value(values[i], objective) for values in in_sample]),
            out_of_sample_median=_finite(_median([_objective_value(oos[j], objective) for oos in universe_oos])),
            out_of_sample_mean=_mean_defined([_objective_value(oos[j], objective) for oos in universe_oos]),
            symbols_defined=sum(math.isfinite(_objective_value(values[i], objective)) for values in in_sample),
        )
        for rank, (j, i) in enumerate(enumerate(across), start=1)
    ]
    report = UniverseReport(symbols=universe, top=ranks, per_symbol=per_symbol)
    return OptimizationReport(
        **common, symbol=None, method=method, universe=report, executor=executor, elapsed_s=elapsed
    )


def _best(values: list[Metrics], objective: str, top_n: int) -> list[int]:
    """Indices of the ``top_n`` best by in-sample objective (undefined counts as lowest)."""
    return sorted(range(len(values)), key=lambda i: _objective_value(values[i], objective), reverse=True)[:top_n]


def _median(values: list[float]) -> float:
    """The median (mean of the two middle values for an even count); -inf values count as lowest."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    low, high = ordered[mid - 1], ordered[mid]
    return low if low == high else (low + high) / 2


def _mean_defined(values: list[float]) -> float | None:
    defined = [v for v in values if math.isfinite(v)]
    return sum(defined) / len(defined) if defined else None


def _universe_best(in_sample: list[list[Metrics]], objective: str, top_n: int) -> list[int]:
    """Indices of the ``top_n`` parameter sets across the universe: by the median over the symbols of the
    in-sample objective (undefined counts as lowest), ties broken by the mean where it is defined."""
    columns = [[_objective_value(values[i], objective) for values in in_sample] for i in range(len(in_sample[0]))]

    def key(i: int) -> tuple[float, float]:
        mean = _mean_defined(columns[i])
        return (_median(columns[i]), -math.inf if mean is None else mean)

    return sorted(range(len(columns)), key=key, reverse=True)[:top_n]


TOOLS = [optimize_strategy]
