"""Honest evaluation: rolling-origin (walk-forward) validation of the network and its baselines.

Folds (scikit-learn's ``TimeSeriesSplit(n_splits=folds, gap=horizon)`` over the samples in time order):
fold j trains on every sample before its test block, leaves ``gap = horizon`` samples out, and tests on
the next block, so no training target overlaps a test origin's future (the last training target is the
return ``horizon`` bars after the last training origin; the first test origin comes after it). Scalers,
the network and the baselines are fitted on each fold's training window only.

Scores, per horizon step k = 1..h, over every out-of-sample origin of every fold, on the cumulative log
return ``c_k`` (the log-price change k bars ahead; see `features`):

- ``MAE = mean|c_k - c^_k|``, ``RMSE = sqrt(mean (c_k - c^_k)^2)``;
- ``MASE = mean(|c_k - c^_k| / s)`` with s the fold's in-sample one-step naive MAE of the log price,
  ``mean|r|`` over the training window (Hyndman & Koehler 2006);
- directional accuracy: the share of origins where ``sign(c^_k) == sign(c_k)`` (origins with ``c_k = 0``
  skipped; null for a forecast that never moves, like ``naive``);
- skill against a baseline: ``1 - RMSE_model / RMSE_baseline`` (> 0: the model is better; the overall
  figure uses the RMSEs averaged over steps).

Prediction intervals: split-conformal on the walk-forward residuals, per step. For level ``c`` the
half-width at step k is the ``ceil((n + 1) c) / n`` empirical quantile of the n absolute residuals
``|c_k - c^_k|`` (the whole interval is ``c^_k +- q_k``; infinite when n is too small). Their coverage is
measured out of sample: fold j's intervals are calibrated on the residuals of folds before j only, and
the report gives the share of fold-j outcomes inside, and the mean Winkler score
``(u - l) + (2 / (1 - c)) * ((l - y)^+ + (y - u)^+)`` (lower is better), over folds 2..n.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.forecast import baselines
from nt_mcp.domain.forecast.features import cumulative, log_returns, supervised
from nt_mcp.domain.forecast.model import FittedModel, ModelConfig, fit_model

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]
MIN_TEST_SAMPLES = 5
MIN_TRAIN_SAMPLES = 30
MAX_FOLDS = 10


class Stopped(Exception):
    """The caller asked to stop (a cancelled or timed-out call) between two fits."""


@dataclass(frozen=True)
class Fold:
    index: int
    train_origins: tuple[int, int]  # first and last origin (index into the returns), inclusive
    test_origins: tuple[int, int]
    train_samples: int
    test_samples: int


@dataclass(frozen=True)
class StepScore:
    step: int
    mae: float
    rmse: float
    mase: float
    directional_accuracy: float | None


@dataclass(frozen=True)
class Scores:
    name: str
    description: str
    steps: list[StepScore]

    @property
    def rmse(self) -> float:
        return float(np.mean([s.rmse for s in self.steps]))

    @property
    def mae(self) -> float:
        return float(np.mean([s.mae for s in self.steps]))


@dataclass(frozen=True)
class Skill:
    baseline: str
    per_step: list[float]
    overall: float


@dataclass(frozen=True)
class IntervalReport:
    confidence: float
    half_widths: list[float]  # per step, in log-return units, from every walk-forward residual
    coverage: list[float | None]  # per step, out of sample (folds 2..n)
    winkler: list[float | None]
    evaluated: int  # out-of-sample outcomes behind the coverage figures, per step

    @property
    def overall_coverage(self) -> float | None:
        values = [c for c in self.coverage if c is not None]
        return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class Evaluation:
    config: ModelConfig
    folds: list[Fold]
    scores: dict[str, Scores]  # "model" and each baseline
    skill: list[Skill]
    beats_naive: bool
    verdict: str
    intervals: IntervalReport
    arima_orders: list[int]
    model_iterations: list[int] = field(default_factory=list)


def conformal_quantile(abs_residuals: FloatArray, confidence: float) -> float:
    """``ceil((n + 1) c) / n`` empirical quantile of the absolute residuals (inf when it exceeds 1)."""
    n = abs_residuals.shape[0]
    if n == 0:
        return math.inf
    level = math.ceil((n + 1) * confidence) / n
    if level > 1:
        return math.inf
    return float(np.quantile(abs_residuals, level, method="higher"))


def winkler(lower: FloatArray, upper: FloatArray, actual: FloatArray, confidence: float) -> FloatArray:
    alpha = 1.0 - confidence
    below = np.clip(lower - actual, 0, None)
    above = np.clip(actual - upper, 0, None)
    return (upper - lower) + (2.0 / alpha) * (below + above)


def _step_scores(name: str, pred: FloatArray, actual: FloatArray, scale: FloatArray) -> Scores:
    errors = pred - actual
    steps = []
    for k in range(actual.shape[1]):
        moving = actual[:, k] != 0
        direction = None
        if np.any(pred[:, k] != 0):
            agree = np.sign(pred[moving, k]) == np.sign(actual[moving, k])
            direction = float(agree.mean()) if moving.any() else None
        steps.append(
            StepScore(
                step=k + 1,
                mae=float(np.mean(np.abs(errors[:, k]))),
                rmse=float(np.sqrt(np.mean(errors[:, k] ** 2))),
                mase=float(np.mean(np.abs(errors[:, k]) / scale)),
                directional_accuracy=direction,
            )
        )
    return Scores(name, baselines.DESCRIPTIONS.get(name, "the neural network (MLP) on lagged log returns"), steps)


def _verdict(skill: list[Skill], scores: dict[str, Scores]) -> tuple[bool, str]:
    naive = next(s for s in skill if s.baseline == "naive")
    model_rmse, naive_rmse = scores["model"].rmse, scores["naive"].rmse
    beaten = [s.baseline for s in skill if s.overall > 0]
    if naive.overall <= 0:
        text = (
            f"The model does NOT beat the naive no-change forecast out of sample: mean RMSE {model_rmse:.6f} vs "
            f"{naive_rmse:.6f} (skill {naive.overall:+.3f}). Do not trade on it."
        )
        return False, text
    others = [s.baseline for s in skill if s.baseline != "naive" and s.overall <= 0]
    text = f"The model beats the naive forecast out of sample (RMSE skill {naive.overall:+.3f})"
    text += f" and {', '.join(b for b in beaten if b != 'naive') or 'no other baseline'}"
    if others:
        text += f"; it does NOT beat {', '.join(others)}"
    return True, text + ". Small skill on returns is common and may not survive costs."


def time_series_folds(samples: int, folds: int, gap: int) -> list[tuple[FloatArray, FloatArray]]:
    """scikit-learn's TimeSeriesSplit, checked for enough samples per fold."""
    from sklearn.model_selection import TimeSeriesSplit

    if not 2 <= folds <= MAX_FOLDS:
        raise DomainValueError("folds", f"must be between 2 and {MAX_FOLDS}, got {folds}")
    test_size = samples // (folds + 1)
    first_train = samples - folds * test_size - gap
    if test_size < MIN_TEST_SAMPLES or first_train < MIN_TRAIN_SAMPLES:
        needed = (folds + 1) * MIN_TEST_SAMPLES + gap + MIN_TRAIN_SAMPLES
        raise DomainValueError(
            "bars", f"{samples} samples are too few for {folds} folds (about {needed} needed): load more bars"
        )
    splitter = TimeSeriesSplit(n_splits=folds, gap=gap, test_size=test_size)
    return [(train, test) for train, test in splitter.split(np.arange(samples))]


def walk_forward(
    close: FloatArray,
    config: ModelConfig,
    folds: int = 5,
    confidence: float = 0.9,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
) -> tuple[Evaluation, FloatArray]:
    """Walk-forward scores of the network and the baselines on ``close``; also returns the absolute
    walk-forward residuals of the network (rows = origins, columns = steps) for conformal intervals."""
    if not 0 < confidence < 1:
        raise DomainValueError("confidence", f"must lie strictly between 0 and 1, got {confidence}")
    r = log_returns(close)
    x, y = supervised(r, config.lags, config.horizon)
    config.check_work(x.shape[0])  # the final fit on every sample is the largest: refuse before fitting anything
    splits = time_series_folds(x.shape[0], folds, gap=config.horizon)
    total = len(splits)
    predictions: dict[str, list[FloatArray]] = {"model": [], "naive": [], "drift": [], "arima": []}
    actual_parts, scale_parts, fold_of = [], [], []
    fold_info, orders, iterations = [], [], []
    for j, (train, test) in enumerate(splits):
        if should_stop is not None and should_stop():
            raise Stopped
        if progress is not None:
            progress(j, total + 1, f"fold {j + 1}/{total}: fitting the network on {len(train)} samples")
        model = fit_model(x[train], y[train], config)
        iterations.append(model.n_iter)
        last_train_return = int(train[-1]) + config.lags - 1 + config.horizon
        train_returns = r[: last_train_return + 1]
        ar = baselines.fit_ar(train_returns)
        orders.append(ar.order)
        rows = len(test)
        predictions["model"].append(cumulative(model.predict(x[test])))
        predictions["naive"].append(cumulative(baselines.naive_forecast(rows, config.horizon)))
        predictions["drift"].append(cumulative(baselines.drift_forecast(train_returns, rows, config.horizon)))
        predictions["arima"].append(cumulative(baselines.ar_forecast(ar, x[test], config.horizon)))
        actual_parts.append(cumulative(y[test]))
        naive_mae = float(np.mean(np.abs(train_returns)))
        scale_parts.append(np.full(rows, naive_mae if naive_mae > 0 else 1.0))
        fold_of.append(np.full(rows, j))
        first = config.lags - 1
        fold_info.append(
            Fold(
                index=j + 1,
                train_origins=(int(train[0]) + first, int(train[-1]) + first),
                test_origins=(int(test[0]) + first, int(test[-1]) + first),
                train_samples=len(train),
                test_samples=rows,
            )
        )
    actual = np.concatenate(actual_parts)
    scale = np.concatenate(scale_parts)
    fold_index = np.concatenate(fold_of)
    stacked = {name: np.concatenate(parts) for name, parts in predictions.items()}
    scores = {name: _step_scores(name, pred, actual, scale) for name, pred in stacked.items()}
    skill = []
    for name in baselines.BASELINES:
        per_step = [
            1.0 - m.rmse / b.rmse if b.rmse > 0 else 0.0
            for m, b in zip(scores["model"].steps, scores[name].steps, strict=True)
        ]
        overall = 1.0 - scores["model"].rmse / scores[name].rmse if scores[name].rmse > 0 else 0.0
        skill.append(Skill(name, per_step, overall))
    beats, verdict = _verdict(skill, scores)
    residuals = np.abs(actual - stacked["model"])
    intervals = _interval_report(stacked["model"], actual, residuals, fold_index, total, confidence)
    evaluation = Evaluation(
        config=config,
        folds=fold_info,
        scores=scores,
        skill=skill,
        beats_naive=beats,
        verdict=verdict,
        intervals=intervals,
        arima_orders=orders,
        model_iterations=iterations,
    )
    return evaluation, residuals


def _interval_report(
    pred: FloatArray, actual: FloatArray, residuals: FloatArray, fold_index: FloatArray, folds: int, confidence: float
) -> IntervalReport:
    steps = actual.shape[1]
    covered = [[] for _ in range(steps)]  # type: list[list[FloatArray]]
    scores = [[] for _ in range(steps)]  # type: list[list[FloatArray]]
    for j in range(1, folds):
        calibration = fold_index < j
        here = fold_index == j
        for k in range(steps):
            q = conformal_quantile(residuals[calibration, k], confidence)
            if not math.isfinite(q):
                continue
            low, high = pred[here, k] - q, pred[here, k] + q
            covered[k].append((actual[here, k] >= low) & (actual[here, k] <= high))
            scores[k].append(winkler(low, high, actual[here, k], confidence))
    coverage = [float(np.concatenate(c).mean()) if c else None for c in covered]
    mean_winkler = [float(np.concatenate(s).mean()) if s else None for s in scores]
    evaluated = int(sum(len(part) for part in covered[0])) if covered[0] else 0
    return IntervalReport(
        confidence=confidence,
        half_widths=[conformal_quantile(residuals[:, k], confidence) for k in range(steps)],
        coverage=coverage,
        winkler=mean_winkler,
        evaluated=evaluated,
    )


def final_model(close: FloatArray, config: ModelConfig) -> FittedModel:
    """The network fitted on every sample of ``close`` (for forecasting from the latest bar)."""
    r = log_returns(close)
    x, y = supervised(r, config.lags, config.horizon)
    return fit_model(x, y, config)


@dataclass(frozen=True)
class ForecastStep:
    step: int
    log_return: float  # cumulative, from the last close
    price: float
    lower: float | None  # conformal interval on the price (None when it is unbounded)
    upper: float | None


def forecast_path(model: FittedModel, close: FloatArray, half_widths: list[float] | None = None) -> list[ForecastStep]:
    """The next ``horizon`` closes from the last bar: ``P_k = P_last * exp(c^_k)``, and the conformal
    interval ``P_last * exp(c^_k -+ q_k)`` when half-widths are given."""
    r = log_returns(close)
    lags = model.config.lags
    if r.shape[0] < lags:
        raise DomainValueError("bars", f"{r.shape[0]} returns; the model needs the latest {lags}")
    path = cumulative(model.predict(r[-lags:][None, :]))[0]
    last = float(close[-1])
    out = []
    for k, c in enumerate(path):
        q = half_widths[k] if half_widths is not None else math.inf
        bounded = math.isfinite(q)
        out.append(
            ForecastStep(
                step=k + 1,
                log_return=float(c),
                price=last * math.exp(float(c)),
                lower=last * math.exp(float(c) - q) if bounded else None,
                upper=last * math.exp(float(c) + q) if bounded else None,
            )
        )
    return out
