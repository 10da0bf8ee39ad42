"""Train, evaluate, store and use neural forecasters: market data + the domain forecaster + storage.

- `evaluate`: walk-forward scores of the network against its baselines; nothing stored.
- `train`: the same evaluation, then the network fitted on every sample, stored in ``neural_models``
  with its parameters, features, metrics and weights (a versioned blob; the walk-forward residuals ride
  along for conformal intervals at any confidence).
- `forecast`: the next ``horizon`` closes from the latest bar, with the principal's newest model of the
  series when it is younger than ``NT_FORECAST_MODEL_MAX_AGE_S`` and covers the horizon, otherwise a
  model trained now with the default architecture (the result says which). Every forecast is stored in
  ``forecasts``.

The fitting runs in a worker thread through `CpuWork` (bounded, progress notifications, stops between
fits when the call is cancelled or times out). At most ``NT_FORECAST_MAX_BARS`` bars are used.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from nt_mcp.adapters.data.market import MarketData, MarketDataHub, domain_error
from nt_mcp.config import Settings
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.forecast import Evaluation, FittedModel, ForecastStep, ModelConfig, forecast_path
from nt_mcp.domain.forecast.evaluation import Stopped, conformal_quantile, final_model, walk_forward
from nt_mcp.domain.forecast.model import BLOB_VERSION
from nt_mcp.errors import NotFoundError, ValidationError
from nt_mcp.infra.forecasts import ForecastStore, ModelSummary, StoredForecast, StoredModel
from nt_mcp.services.cpu_work import CpuWork, Progress, Report, StopCheck
from nt_mcp.services.market_series import Series, load_series

MODEL_KIND = "mlp"
DEFAULT_BARS = 2520  # ten years of daily bars
FEATURES = (
    "log returns r[t] = ln(close[t] / close[t-1]); input: the latest `lookback` returns (oldest first), "
    "standardised with the training window's mean and std; output: the next `horizon` returns (direct "
    "multi-step), mapped back with the training targets' scale"
)


@dataclass(frozen=True)
class TrainRequest:
    principal: str
    symbol: str
    timeframe: str
    config: ModelConfig
    folds: int
    bars: int | None  # None: DEFAULT_BARS, or NT_FORECAST_MAX_BARS when lower
    confidence: float
    data_source: str | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Trained:
    model: StoredModel
    evaluation: Evaluation
    series: Series


@dataclass(frozen=True)
class Forecast:
    model: StoredModel
    reused: bool
    steps: list[ForecastStep]
    series: Series
    forecast_id: str
    confidence: float
    trained: Trained | None


def evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation as plain JSON (stored with a model, returned by the tools)."""
    intervals = evaluation.intervals
    return {
        "scores": {
            name: {
                "description": scores.description,
                "mae": scores.mae,
                "rmse": scores.rmse,
                "steps": [
                    {
                        "step": s.step,
                        "mae": s.mae,
                        "rmse": s.rmse,
                        "mase": s.mase,
                        "directional_accuracy": s.directional_accuracy,
                    }
                    for s in scores.steps
                ],
            }
            for name, scores in evaluation.scores.items()
        },
        "skill": [{"baseline": s.baseline, "overall": s.overall, "per_step": s.per_step} for s in evaluation.skill],
        "beats_naive": evaluation.beats_naive,
        "verdict": evaluation.verdict,
        "intervals": {
            "confidence": intervals.confidence,
            "half_widths": [_finite(q) for q in intervals.half_widths],
            "coverage": intervals.coverage,
            "overall_coverage": intervals.overall_coverage,
            "winkler": intervals.winkler,
            "evaluated": intervals.evaluated,
        },
        "folds": [
            {
                "fold": f.index,
                "train_origins": list(f.train_origins),
                "test_origins": list(f.test_origins),
                "train_samples": f.train_samples,
                "test_samples": f.test_samples,
            }
            for f in evaluation.folds
        ],
        "arima_orders": evaluation.arima_orders,
        "model_iterations": evaluation.model_iterations,
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


class ForecastingService:
    def __init__(self, store: ForecastStore, hub: MarketDataHub, work: CpuWork, settings: Settings) -> None:
        self.store = store
        self.hub = hub
        self.work = work
        self.settings = settings

    def _bars(self, bars: int | None) -> int:
        limit = self.settings.forecast_max_bars
        if bars is None:
            return min(DEFAULT_BARS, limit)
        if bars > limit:
            raise ValidationError(f"bars must be at most {limit} (NT_FORECAST_MAX_BARS), got {bars}", argument="bars")
        return bars

    async def _series(self, req: TrainRequest) -> tuple[MarketData, Series]:
        bars = self._bars(req.bars)
        market = self.hub.get(req.data_source)
        series = await load_series(
            market, [req.symbol], req.timeframe, bars, req.end, argument="bars", symbols_argument="symbol"
        )
        return market, series

    async def _run(
        self, req: TrainRequest, series: Series, fit_final: bool, report: Report | None
    ) -> tuple[Evaluation, FittedModel | None]:
        close = series.closes[:, 0].copy()

        def job(progress: Progress, should_stop: StopCheck) -> tuple[Evaluation, FittedModel | None]:
            evaluation, residuals = walk_forward(close, req.config, req.folds, req.confidence, progress, should_stop)
            if not fit_final:
                return evaluation, None
            if should_stop():
                raise Stopped
            progress(req.folds, req.folds + 1, f"fitting the final network on all {len(close)} bars")
            model = final_model(close, req.config)
            return evaluation, replace(model, residuals=residuals)

        try:
            return await self.work.run(job, report)
        except DomainValueError as error:
            raise domain_error(error) from None

    async def evaluate(self, req: TrainRequest, report: Report | None = None) -> tuple[Evaluation, Series]:
        _, series = await self._series(req)
        evaluation, _ = await self._run(req, series, fit_final=False, report=report)
        return evaluation, series

    async def train(self, req: TrainRequest, report: Report | None = None) -> Trained:
        _, series = await self._series(req)
        evaluation, fitted = await self._run(req, series, fit_final=True, report=report)
        assert fitted is not None
        stored = StoredModel(
            id=uuid.uuid4().hex,
            principal=req.principal,
            symbol=req.symbol,
            timeframe=req.timeframe,
            data_source=series.source,
            kind=MODEL_KIND,
            params=req.config.as_dict()
            | {"folds": req.folds, "bars": int(series.closes.shape[0]), "confidence": req.confidence},
            features={
                "description": FEATURES,
                "lookback": req.config.lags,
                "horizon": req.config.horizon,
                "bars": int(series.closes.shape[0]),
                "training_samples": fitted.train_samples,
                "epochs": fitted.n_iter,
            },
            metrics=evaluation_dict(evaluation),
            weights=fitted.to_blob(),
            blob_version=BLOB_VERSION,
            data_start=series.moment(0),
            data_end=series.moment(-1),
            created_at=datetime.now(UTC),
        )
        await self.store.insert_model(stored)
        return Trained(stored, evaluation, series)

    async def _model_for(
        self,
        principal: str,
        symbol: str,
        timeframe: str,
        source: str,
        horizon: int,
        model_id: str | None,
        end: datetime | None,
    ) -> StoredModel | None:
        """The model to forecast with: ``model_id``, or the newest fresh one of the series. A model that
        saw bars after ``end`` is never used for a forecast as of ``end`` (that would be look-ahead)."""
        if model_id is not None:
            stored = await self.store.get(principal, model_id)
            if stored is None:
                raise NotFoundError(f"No forecaster {model_id!r} of yours.", context={"argument": "model_id"})
            if stored.symbol != symbol or stored.timeframe != timeframe or stored.data_source != source:
                raise ValidationError(
                    f"model {model_id} was trained on {stored.symbol} {stored.timeframe} ({stored.data_source}), "
                    f"not {symbol} {timeframe} ({source})",
                    argument="model_id",
                )
            if end is not None and _aware(stored.data_end) > end:
                raise ValidationError(
                    f"model {model_id} was trained on bars up to {_aware(stored.data_end).date()}, after end "
                    f"({end.date()}): a forecast as of end cannot use it",
                    argument="model_id",
                )
            if int(stored.params["horizon"]) < horizon:
                raise ValidationError(
                    f"model {model_id} forecasts {stored.params['horizon']} bars ahead; horizon {horizon} is beyond it",
                    argument="horizon",
                )
            return stored
        since = datetime.now(UTC) - timedelta(seconds=self.settings.forecast_model_max_age_s)
        stored = await self.store.latest(principal, symbol, timeframe, source, since)
        covers = stored is not None and int(stored.params["horizon"]) >= horizon
        if covers and stored is not None and (end is None or _aware(stored.data_end) <= end):
            return stored
        return None

    async def forecast(
        self,
        principal: str,
        symbol: str,
        timeframe: str,
        horizon: int,
        confidence: float,
        data_source: str | None = None,
        end: datetime | None = None,
        model_id: str | None = None,
        report: Report | None = None,
    ) -> Forecast:
        market = self.hub.get(data_source)
        stored = await self._model_for(principal, symbol, timeframe, market.source, horizon, model_id, end)
        trained = None
        if stored is None:
            try:
                config = ModelConfig(horizon=max(horizon, ModelConfig.horizon))
            except DomainValueError as error:
                raise ValidationError(
                    f"{error.message} (a new model uses the default lookback {ModelConfig.lags})",
                    argument=error.argument,
                ) from None
            request = TrainRequest(principal, symbol, timeframe, config, 5, None, confidence, data_source, end)
            trained = await self.train(request, report)
            stored = trained.model
        try:
            model = FittedModel.from_blob(stored.weights)
        except DomainValueError as error:
            raise ValidationError(f"model {stored.id} cannot be read: {error.message}", argument="model_id") from None
        series = await load_series(
            market, [symbol], timeframe, model.config.lags + 2, end, argument="bars", symbols_argument="symbol"
        )
        residuals = model.residuals if model.residuals is not None else np.zeros((0, model.config.horizon))
        half_widths = [conformal_quantile(residuals[:, k], confidence) for k in range(horizon)]
        try:
            full = forecast_path(model, series.closes[:, 0], half_widths + [np.inf] * (model.config.horizon - horizon))
        except DomainValueError as error:
            raise domain_error(error) from None
        steps = full[:horizon]
        forecast_id = uuid.uuid4().hex
        await self.store.insert_forecast(
            StoredForecast(
                id=forecast_id,
                model_id=stored.id,
                principal=principal,
                symbol=symbol,
                origin_time=series.moment(-1),
                horizon=horizon,
                confidence=confidence,
                path=[
                    {"step": s.step, "price": s.price, "log_return": s.log_return, "lower": s.lower, "upper": s.upper}
                    for s in steps
                ],
                created_at=datetime.now(UTC),
            )
        )
        return Forecast(stored, trained is None, steps, series, forecast_id, confidence, trained)

    async def models(self, principal: str, limit: int, symbol: str | None = None) -> list[tuple[ModelSummary, int]]:
        rows = await self.store.recent(principal, limit, symbol)
        counts = await self.store.forecast_counts([r.id for r in rows])
        return [(r, counts.get(r.id, (0, None))[0]) for r in rows]
