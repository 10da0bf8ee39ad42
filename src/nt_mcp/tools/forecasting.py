"""Forecasting tools: train_forecaster, evaluate_forecaster, forecast, list_models.

Thin: validate, call `nt_mcp.services.forecasting`, shape the result. Every result states the data
(source, synthetic or not, bars, first/last timestamp), the method, and the walk-forward verdict against
the naive, drift and ARIMA baselines -- including, plainly, when the network does not beat naive.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.forecast import ModelConfig
from nt_mcp.errors import ValidationError
from nt_mcp.services.forecasting import Trained, TrainRequest, evaluation_dict
from nt_mcp.services.market_series import Series
from nt_mcp.tools.arguments import DATETIME_HELP, OptionalUtcDateTime, Text
from nt_mcp.tools.backtesting import SourceArg, SymbolArg, TimeframeArg
from nt_mcp.tools.jobs import JobStatus, start_background
from nt_mcp.tools.registry import ToolContext, tool

WALK_FORWARD = (
    "Rolling-origin (walk-forward) validation: the samples are split in time order into `folds` test blocks "
    "(scikit-learn TimeSeriesSplit); each fold fits the scalers, the network and the baselines on every earlier "
    "sample only, skips `horizon` samples (gap >= horizon, so no training target overlaps a test origin's "
    "future) and forecasts every origin of its block. Scores per step k are on the cumulative log return "
    "to k bars ahead: MAE, RMSE, MASE (errors / the training window's mean |one-bar log return|), directional "
    "accuracy (share of origins whose predicted sign is right; null for naive, which never moves). "
    "skill = 1 - RMSE_model / RMSE_baseline (> 0: better). Intervals: split-conformal on the walk-forward "
    "absolute residuals per step; coverage and Winkler score measured on each fold with intervals calibrated "
    "on earlier folds only."
)

LookbackArg = Annotated[int, Field(ge=2, le=250, description="Lagged log returns the network reads (bars).")]
HorizonArg = Annotated[int, Field(ge=1, le=60, description="Bars ahead to forecast; must be below lookback.")]
ConfidenceArg = Annotated[
    float, Field(gt=0, lt=1, description="Prediction-interval level, strictly between 0 and 1 (0.9 = 90 %).")
]
ModelIdText = Text(64, pattern=r"^[0-9a-f]{1,64}$")
SymbolText = Text(32)
EndArg = Annotated[OptionalUtcDateTime, Field(description=f"Last bar to use ({DATETIME_HELP}). Default: now.")]


class DataUsed(BaseModel):
    source: str
    synthetic: bool = Field(description="true: generated prices (seeded random walk), NOT real market data")
    symbols: list[str]
    timeframe: str
    bars: int
    first_timestamp: datetime
    last_timestamp: datetime
    detail: str


def data_used(series: Series) -> DataUsed:
    return DataUsed(
        source=series.source,
        synthetic=series.synthetic,
        symbols=series.symbols,
        timeframe=series.timeframe,
        bars=int(series.closes.shape[0]),
        first_timestamp=series.moment(0),
        last_timestamp=series.moment(-1),
        detail=series.detail,
    )


class StepScoreOut(BaseModel):
    step: int
    mae: float
    rmse: float
    mase: float
    directional_accuracy: float | None


class ScoresOut(BaseModel):
    description: str
    mae: float = Field(description="mean over steps")
    rmse: float = Field(description="mean over steps")
    steps: list[StepScoreOut]


class SkillOut(BaseModel):
    baseline: str
    overall: float = Field(description="1 - mean RMSE of the model / mean RMSE of the baseline; > 0 = better")
    per_step: list[float]


class HorizonRow(BaseModel):
    """One row of the walk-forward table: RMSE of each forecaster at step k and the model's skill."""

    step: int
    rmse_model: float
    rmse_naive: float
    rmse_drift: float
    rmse_arima: float
    mase_model: float
    directional_accuracy_model: float | None
    skill_vs_naive: float
    skill_vs_drift: float
    skill_vs_arima: float


class IntervalsOut(BaseModel):
    confidence: float
    half_widths: list[float | None] = Field(description="per step, in log-return units (null: unbounded)")
    coverage: list[float | None] = Field(description="per step, out of sample (folds 2..n)")
    overall_coverage: float | None
    winkler: list[float | None] = Field(description="mean Winkler score per step (lower is better)")
    evaluated: int = Field(description="out-of-sample outcomes behind each step's coverage")


class FoldOut(BaseModel):
    fold: int
    train_origins: list[int]
    test_origins: list[int]
    train_samples: int
    test_samples: int


class EvaluationOut(BaseModel):
    method: str
    verdict: str = Field(description="in words: does the network beat the baselines out of sample?")
    beats_naive: bool
    table: list[HorizonRow]
    scores: dict[str, ScoresOut] = Field(description="'model', 'naive', 'drift', 'arima'")
    skill: list[SkillOut]
    intervals: IntervalsOut
    folds: list[FoldOut]
    arima_orders: list[int] = Field(description="AR order chosen by AIC in each fold")
    model_iterations: list[int] = Field(description="training epochs of the network in each fold")


def evaluation_out(metrics: dict[str, Any]) -> EvaluationOut:
    scores = metrics["scores"]
    skill = {s["baseline"]: s for s in metrics["skill"]}
    table = [
        HorizonRow(
            step=k + 1,
            rmse_model=scores["model"]["steps"][k]["rmse"],
            rmse_naive=scores["naive"]["steps"][k]["rmse"],
            rmse_drift=scores["drift"]["steps"][k]["rmse"],
            rmse_arima=scores["arima"]["steps"][k]["rmse"],
            mase_model=scores["model"]["steps"][k]["mase"],
            directional_accuracy_model=scores["model"]["steps"][k]["directional_accuracy"],
            skill_vs_naive=skill["naive"]["per_step"][k],
            skill_vs_drift=skill["drift"]["per_step"][k],
            skill_vs_arima=skill["arima"]["per_step"][k],
        )
        for k in range(len(scores["model"]["steps"]))
    ]
    return EvaluationOut(
        method=WALK_FORWARD,
        verdict=metrics["verdict"],
        beats_naive=metrics["beats_naive"],
        table=table,
        scores={name: ScoresOut(**value) for name, value in scores.items()},
        skill=[SkillOut(**s) for s in metrics["skill"]],
        intervals=IntervalsOut(**metrics["intervals"]),
        folds=[FoldOut(**f) for f in metrics["folds"]],
        arima_orders=metrics["arima_orders"],
        model_iterations=metrics["model_iterations"],
    )


class ModelParams(BaseModel):
    lookback: int
    horizon: int
    hidden_layers: list[int]
    max_iter: int
    alpha: float
    learning_rate_init: float
    early_stopping: bool
    seed: int
    folds: int
    bars: int
    confidence: float


def _params_out(params: dict[str, Any]) -> ModelParams:
    return ModelParams(lookback=params["lags"], **{k: v for k, v in params.items() if k != "lags"})


class TrainReport(BaseModel):
    model_id: str | None = Field(description="forecast reuses it (or pass it as model_id); null with background=true")
    symbol: str
    model: str | None = Field(description="the network and how it was fitted")
    params: ModelParams | None
    features: str | None
    evaluation: EvaluationOut | None
    data: DataUsed | None
    created_at: datetime | None
    job: JobStatus | None = Field(
        None, description="with background=true: the job now queued (poll get_job); the other results are null"
    )
    elapsed_s: float


def _config(lookback: int, horizon: int, hidden_layers: list[int], max_iter: int, seed: int) -> ModelConfig:
    try:
        return ModelConfig(
            lags=lookback, horizon=horizon, hidden_layers=tuple(hidden_layers), max_iter=max_iter, seed=seed
        )
    except DomainValueError as error:
        raise ValidationError(f"{error.argument}: {error.message}", argument=error.argument) from None


MODEL_TEXT = (
    "scikit-learn MLPRegressor: ReLU hidden layers, identity output (one per step), Adam, L2 alpha, early "
    "stopping on a 10 % validation split of the training window, seeded; features and targets standardised "
    "on the training window only"
)


def _train_report(trained: Trained, started: float) -> TrainReport:
    model = trained.model
    return TrainReport(
        model_id=model.id,
        symbol=model.symbol,
        model=MODEL_TEXT,
        params=_params_out(model.params),
        features=model.features["description"],
        evaluation=evaluation_out(model.metrics),
        data=data_used(trained.series),
        created_at=model.created_at,
        elapsed_s=round(time.perf_counter() - started, 3),
    )


HiddenArg = Annotated[
    list[Annotated[int, Field(ge=1, le=256)]],
    Field(min_length=1, max_length=4, description="Units per hidden layer, e.g. [50, 50, 25] (the default)."),
]
FoldsArg = Annotated[int, Field(ge=2, le=10, description="Walk-forward folds (test blocks).")]
BarsArg = Annotated[
    int | None,
    Field(
        ge=100,
        le=50_000,
        description="Latest bars to use, at most NT_FORECAST_MAX_BARS. Default: 2520 (10 years of daily bars) "
        "or NT_FORECAST_MAX_BARS when lower.",
    ),
]
MaxIterArg = Annotated[int, Field(ge=1, le=1000, description="At most this many training epochs per fit.")]
SeedArg = Annotated[int, Field(ge=0, le=2**31 - 1, description="Random seed: same data + seed = same model.")]


def _request(
    ctx: ToolContext,
    symbol: str,
    timeframe: str,
    lookback: int,
    horizon: int,
    folds: int,
    bars: int | None,
    hidden_layers: list[int],
    max_iter: int,
    seed: int,
    confidence: float,
    data_source: str | None,
    end: datetime | None,
) -> TrainRequest:
    return TrainRequest(
        principal=ctx.principal.subject,
        symbol=symbol,
        timeframe=timeframe,
        config=_config(lookback, horizon, hidden_layers, max_iter, seed),
        folds=folds,
        bars=bars,
        confidence=confidence,
        data_source=data_source,
        end=end,
    )


@tool(output=TrainReport, scope="backtest", title="Train a neural forecaster", cost=5, open_world=True)
async def train_forecaster(
    ctx: ToolContext,
    symbol: SymbolArg,
    timeframe: TimeframeArg = "1Day",
    lookback: LookbackArg = 60,
    horizon: HorizonArg = 5,
    folds: FoldsArg = 5,
    bars: BarsArg = None,
    hidden_layers: HiddenArg = [50, 50, 25],  # noqa: B006 - pydantic copies defaults
    max_iter: MaxIterArg = 200,
    seed: SeedArg = 0,
    confidence: ConfidenceArg = 0.9,
    data_source: SourceArg = None,
    end: EndArg = None,
    background: Annotated[
        bool,
        Field(description="Run as a job: answer at once with `job` (poll get_job for progress and this report)."),
    ] = False,
) -> TrainReport:
    """Train a neural forecaster (an MLP on the last `lookback` log returns predicting the next `horizon`)
    on the latest `bars` bars of a symbol, judge it walk-forward against the naive (no change), drift
    (historical mean) and ARIMA baselines, and store it (model_id) for `forecast`.

    Returns the walk-forward table per horizon step (RMSE of each forecaster, MASE, directional accuracy,
    skill vs each baseline), a verdict in words (it says plainly when the network does NOT beat naive --
    the usual outcome on daily stock returns), the conformal interval widths with their out-of-sample
    coverage and Winkler score, the parameters and where the data came from (synthetic prices are labelled).
    Runs in a worker thread with progress notifications; stops between fits when cancelled. Bad input
    (horizon >= lookback, too few bars, unknown symbol) returns VALIDATION_ERROR naming the argument.
    background=true checks the arguments, queues a job (kind train_forecaster) and answers at once with
    only `job` set; the job's result is this report. A training job whose server died is failed with
    the reason (it is not retried: training stores a model)."""
    arguments = {name: value for name, value in locals().items() if name not in ("ctx", "background")}
    started = time.perf_counter()
    if background:
        _config(lookback, horizon, hidden_layers, max_iter, seed)  # bad shapes are refused now, not in the job
        job = await start_background(ctx, "train_forecaster", arguments)
        return TrainReport(
            model_id=None, symbol=symbol, model=None, params=None, features=None, evaluation=None, data=None,
            created_at=None, job=job, elapsed_s=round(time.perf_counter() - started, 4),
        )  # fmt: skip
    request = _request(ctx, symbol, timeframe, lookback, horizon, folds, bars, hidden_layers, max_iter, seed,
                       confidence, data_source, end)  # fmt: skip
    trained = await ctx.services.forecasting.train(request, ctx.report_progress)
    return _train_report(trained, started)


class EvaluationReport(BaseModel):
    symbol: str
    model: str
    params: ModelParams
    features: str
    evaluation: EvaluationOut
    data: DataUsed
    stored: bool = Field(description="always false: evaluate_forecaster stores nothing (train_forecaster does)")
    elapsed_s: float


@tool(
    output=EvaluationReport,
    scope="backtest",
    title="Evaluate a neural forecaster walk-forward",
    cost=5,
    read_only=True,
    open_world=True,
)
async def evaluate_forecaster(
    ctx: ToolContext,
    symbol: SymbolArg,
    timeframe: TimeframeArg = "1Day",
    lookback: LookbackArg = 60,
    horizon: HorizonArg = 5,
    folds: FoldsArg = 5,
    bars: BarsArg = None,
    hidden_layers: HiddenArg = [50, 50, 25],  # noqa: B006 - pydantic copies defaults
    max_iter: MaxIterArg = 200,
    seed: SeedArg = 0,
    confidence: ConfidenceArg = 0.9,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> EvaluationReport:
    """The walk-forward table of a neural forecaster against the naive, drift and ARIMA baselines, without
    storing a model: per horizon step the RMSE of each, the network's MASE and directional accuracy, its
    skill against each baseline, a verdict in words (including when it does not beat naive), and the
    conformal intervals' out-of-sample coverage and Winkler score. Same arguments as train_forecaster."""
    started = time.perf_counter()
    request = _request(ctx, symbol, timeframe, lookback, horizon, folds, bars, hidden_layers, max_iter, seed,
                       confidence, data_source, end)  # fmt: skip
    evaluation, series = await ctx.services.forecasting.evaluate(request, ctx.report_progress)
    params = request.config.as_dict() | {"folds": folds, "bars": len(series.closes), "confidence": confidence}
    from nt_mcp.services.forecasting import FEATURES

    return EvaluationReport(
        symbol=symbol,
        model=MODEL_TEXT,
        params=_params_out(params),
        features=FEATURES,
        evaluation=evaluation_out(evaluation_dict(evaluation)),
        data=data_used(series),
        stored=False,
        elapsed_s=round(time.perf_counter() - started, 3),
    )


class ForecastPoint(BaseModel):
    step: int
    price: float = Field(description="forecast close k bars after the last bar: last_close * exp(log_return)")
    log_return: float = Field(description="predicted cumulative log return from the last close")
    lower: float | None = Field(description="conformal interval at `confidence` (null: too few residuals)")
    upper: float | None


class ForecastReport(BaseModel):
    forecast_id: str
    symbol: str
    model_id: str
    model_reused: bool = Field(description="true: a stored model was reused; false: one was trained for this call")
    model_trained_at: datetime
    model_verdict: str = Field(description="the model's walk-forward verdict against the baselines")
    model_beats_naive: bool
    horizon: int
    confidence: float
    last_close: float
    last_bar: datetime
    path: list[ForecastPoint]
    interval_method: str
    data: DataUsed
    elapsed_s: float


@tool(output=ForecastReport, scope="backtest", title="Forecast prices", cost=3, open_world=True)
async def forecast(
    ctx: ToolContext,
    symbol: SymbolArg,
    horizon: HorizonArg = 5,
    confidence: ConfidenceArg = 0.9,
    timeframe: TimeframeArg = "1Day",
    model_id: Annotated[
        ModelIdText | None, Field(description="A model of yours to use (list_models).")  # type: ignore[valid-type]
    ] = None,
    data_source: SourceArg = None,
    end: EndArg = None,
) -> ForecastReport:
    """Forecast the next `horizon` closes of a symbol from its latest bar, with split-conformal prediction
    intervals at `confidence`. Reuses your newest forecaster of the same symbol, timeframe and data source
    when it is fresh (trained within NT_FORECAST_MODEL_MAX_AGE_S, default a day) and covers the horizon;
    otherwise trains one with the default architecture first (slower; model_reused=false). The result
    carries the model's walk-forward verdict against the baselines -- read it before trusting the path.
    The forecast is stored."""
    started = time.perf_counter()
    made = await ctx.services.forecasting.forecast(
        ctx.principal.subject, symbol, timeframe, horizon, confidence, data_source, end, model_id,
        ctx.report_progress,
    )  # fmt: skip
    series = made.series
    created = made.model.created_at
    return ForecastReport(
        forecast_id=made.forecast_id,
        symbol=symbol,
        model_id=made.model.id,
        model_reused=made.reused,
        model_trained_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        model_verdict=made.model.metrics["verdict"],
        model_beats_naive=made.model.metrics["beats_naive"],
        horizon=horizon,
        confidence=confidence,
        last_close=float(series.closes[-1, 0]),
        last_bar=series.moment(-1),
        path=[
            ForecastPoint(step=s.step, price=s.price, log_return=s.log_return, lower=s.lower, upper=s.upper)
            for s in made.steps
        ],
        interval_method=(
            "split-conformal: last_close * exp(log_return -+ q_k), q_k the ceil((n+1) c)/n quantile of the model's "
            "n absolute walk-forward errors at step k"
        ),
        data=data_used(series),
        elapsed_s=round(time.perf_counter() - started, 3),
    )


class ModelSummaryOut(BaseModel):
    model_id: str
    symbol: str
    timeframe: str
    data_source: str
    kind: str
    params: ModelParams
    beats_naive: bool
    verdict: str
    skill_vs_naive: float
    data_start: datetime
    data_end: datetime
    created_at: datetime
    forecasts: int = Field(description="forecasts made with this model")


class ModelList(BaseModel):
    principal: str
    models: list[ModelSummaryOut]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@tool(output=ModelList, scope="read", title="My forecasters", read_only=True, idempotent=True)
async def list_models(
    ctx: ToolContext,
    symbol: Annotated[SymbolText | None, Field(description="Only this symbol's.")] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Field(ge=1, le=200, description="How many of your newest models.")] = 20,
) -> ModelList:
    """List YOUR stored forecasters, newest first: id, symbol, timeframe, data source, parameters, the
    walk-forward verdict and skill against naive, the bars they were trained on, and how many forecasts
    each has made."""
    rows = await ctx.services.forecasting.models(ctx.principal.subject, limit, symbol)
    return ModelList(
        principal=ctx.principal.subject,
        models=[
            ModelSummaryOut(
                model_id=m.id,
                symbol=m.symbol,
                timeframe=m.timeframe,
                data_source=m.data_source,
                kind=m.kind,
                params=_params_out(m.params),
                beats_naive=m.metrics["beats_naive"],
                verdict=m.metrics["verdict"],
                skill_vs_naive=next(s["overall"] for s in m.metrics["skill"] if s["baseline"] == "naive"),
                data_start=_utc(m.data_start),
                data_end=_utc(m.data_end),
                created_at=_utc(m.created_at),
                forecasts=count,
            )
            for m, count in rows
        ],
    )


TOOLS = [train_forecaster, evaluate_forecaster, forecast, list_models]
