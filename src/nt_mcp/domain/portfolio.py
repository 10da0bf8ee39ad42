"""The portfolio optimiser: weights for a set of assets, fitted on one window and judged on the next.

The optimisation itself is skfolio's (BSD; convex problems solved by cvxpy with Clarabel); this module
chooses the estimator, checks the inputs, and measures the result the same way for every method.
skfolio, scikit-learn and pandas are imported inside the functions that need them (about 1.5 s).

Inputs are per-bar simple returns, one column per asset, aligned on the same bars (daily bars: annual
figures use 252 periods a year). Weights are fractions of the portfolio's value that sum to 1,
long-only (each in ``[min_weight, max_weight]`` within ``[0, 1]``).

Objectives (``Objective``):

- ``max_sharpe``: maximise ``(w'mu - rf) / sqrt(w' Sigma w)`` (skfolio ``MeanRisk``, ``MAXIMIZE_RATIO``,
  variance). It has no solution when no attainable portfolio has a mean above ``rf``.
- ``min_variance``: minimise ``w' Sigma w``.
- ``target_return``: minimise ``w' Sigma w`` subject to ``w'mu >= target / 252`` (target annualised).
- ``risk_parity``: equal risk contributions ``w_i (Sigma w)_i`` (skfolio ``RiskBudgeting``, variance).
- ``hrp``: hierarchical risk parity (Lopez de Prado 2016; skfolio ``HierarchicalRiskParity``, variance,
  Pearson-correlation distance, Ward linkage).
- ``equal_weight``: ``1/N`` each.

Estimators, named in every result: expected returns ``sample`` (the mean, skfolio ``EmpiricalMu``) or
``shrunk`` (James-Stein shrinkage towards the grand mean, ``ShrunkMu``); covariance ``sample``
(``EmpiricalCovariance``) or ``ledoit_wolf`` (Ledoit-Wolf shrinkage, ``LedoitWolf``).

Performance of fixed weights over a window (`performance`): the portfolio's per-bar return
``r_p = R w`` (rebalanced to ``w`` every bar), annual return ``252 * mean(r_p)``, annual volatility
``sqrt(252) * std(r_p, ddof=1)``, Sharpe ``(annual return - rf) / annual volatility``, total return
``prod(1 + r_p) - 1``, max drawdown of ``prod(1 + r_p)`` (negative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.errors import DomainValueError

FloatArray = npt.NDArray[np.float64]
Objective = Literal["max_sharpe", "min_variance", "target_return", "risk_parity", "hrp", "equal_weight"]
OBJECTIVES: tuple[Objective, ...] = (
    "max_sharpe", "min_variance", "target_return", "risk_parity", "hrp", "equal_weight",
)  # fmt: skip
MuEstimator = Literal["sample", "shrunk"]
CovEstimator = Literal["sample", "ledoit_wolf"]
PERIODS_PER_YEAR = 252
MIN_BARS = 30

_METHODS = {
    "max_sharpe": "skfolio MeanRisk: maximise the Sharpe ratio (mean / standard deviation), long-only",
    "min_variance": "skfolio MeanRisk: minimise variance, long-only",
    "target_return": "skfolio MeanRisk: minimise variance subject to an annualised mean return >= target",
    "risk_parity": "skfolio RiskBudgeting: equal variance contributions",
    "hrp": "skfolio HierarchicalRiskParity: variance, Pearson distance, Ward linkage",
    "equal_weight": "1/N in every asset",
}
_MU_NAMES = {"sample": "sample mean (EmpiricalMu)", "shrunk": "James-Stein shrunk mean (ShrunkMu)"}
_COV_NAMES = {"sample": "sample covariance (EmpiricalCovariance)", "ledoit_wolf": "Ledoit-Wolf shrinkage (LedoitWolf)"}


class OptimizationInfeasible(DomainValueError):
    """The optimisation has no solution for these returns and constraints (``argument`` says which)."""


@dataclass(frozen=True)
class Constraints:
    """Long-only bounds: ``min_weight``/``max_weight`` for every asset, overridden per symbol by
    ``bounds[symbol] = (low, high)``."""

    min_weight: float = 0.0
    max_weight: float = 1.0
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def arrays(self, symbols: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        unknown = sorted(set(self.bounds) - set(symbols))
        if unknown:
            raise DomainValueError("bounds", f"{unknown[0]!r} is not one of the symbols {list(symbols)}")
        low = np.array([self.bounds.get(s, (self.min_weight, self.max_weight))[0] for s in symbols], dtype=float)
        high = np.array([self.bounds.get(s, (self.min_weight, self.max_weight))[1] for s in symbols], dtype=float)
        if (low < 0).any() or (high > 1).any() or (low > high).any():
            raise DomainValueError("bounds", "each asset's bounds must satisfy 0 <= low <= high <= 1 (long-only)")
        if low.sum() > 1 + 1e-9:
            raise DomainValueError("min_weight", f"the minimum weights add up to {low.sum():.4g} > 1")
        if high.sum() < 1 - 1e-9:
            raise DomainValueError("max_weight", f"the maximum weights add up to {high.sum():.4g} < 1")
        return low, high


@dataclass(frozen=True)
class Performance:
    """Fixed weights held over a window (formulas in the module docstring)."""

    bars: int
    annual_return: float
    annual_volatility: float
    sharpe: float | None
    total_return: float
    max_drawdown: float


@dataclass(frozen=True)
class Allocation:
    objective: Objective
    weights: dict[str, float]
    method: str
    mu_estimator: str
    covariance_estimator: str


def performance(returns: FloatArray, weights: FloatArray, risk_free_rate: float = 0.0) -> Performance:
    r_p = np.asarray(returns, dtype=np.float64) @ np.asarray(weights, dtype=np.float64)
    annual_return = float(r_p.mean() * PERIODS_PER_YEAR)
    vol = float(r_p.std(ddof=1) * math.sqrt(PERIODS_PER_YEAR)) if r_p.shape[0] > 1 else math.nan
    sharpe = (annual_return - risk_free_rate) / vol if vol > 0 else None
    value = np.concatenate([[1.0], np.cumprod(1.0 + r_p)])
    drawdown = float((value / np.maximum.accumulate(value) - 1.0).min())
    return Performance(int(r_p.shape[0]), annual_return, vol, sharpe, float(value[-1] - 1.0), drawdown)


def check_returns(returns: FloatArray, symbols: Sequence[str]) -> FloatArray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != len(symbols):
        raise DomainValueError("symbols", "returns must have one column per symbol")
    if len(symbols) < 2:
        raise DomainValueError("symbols", "give at least two symbols to allocate between")
    if r.shape[0] < MIN_BARS:
        raise DomainValueError("lookback", f"{r.shape[0]} returns; at least {MIN_BARS} are needed per window")
    if not np.isfinite(r).all():
        raise DomainValueError("symbols", "returns contain NaN or infinity")
    return r


def _prior(mu: MuEstimator, covariance: CovEstimator) -> Any:
    from skfolio.moments import EmpiricalCovariance, EmpiricalMu, LedoitWolf, ShrunkMu
    from skfolio.prior import EmpiricalPrior

    return EmpiricalPrior(
        mu_estimator=ShrunkMu() if mu == "shrunk" else EmpiricalMu(),
        covariance_estimator=LedoitWolf() if covariance == "ledoit_wolf" else EmpiricalCovariance(),
    )


def _estimator(
    objective: Objective,
    low: FloatArray,
    high: FloatArray,
    mu: MuEstimator,
    covariance: CovEstimator,
    target_return: float | None,
    risk_free_rate: float,
    frontier_points: int | None = None,
) -> Any:
    from skfolio import RiskMeasure
    from skfolio.optimization import (
        EqualWeighted,
        HierarchicalRiskParity,
        MeanRisk,
        ObjectiveFunction,
        RiskBudgeting,
    )

    prior = _prior(mu, covariance)
    bounds = {"min_weights": low, "max_weights": high}
    rf = risk_free_rate / PERIODS_PER_YEAR
    if frontier_points is not None:
        return MeanRisk(risk_measure=RiskMeasure.VARIANCE, efficient_frontier_size=frontier_points,
                        prior_estimator=prior, **bounds)  # fmt: skip
    if objective == "max_sharpe":
        return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO, risk_measure=RiskMeasure.VARIANCE,
                        risk_free_rate=rf, prior_estimator=prior, **bounds)  # fmt: skip
    if objective == "min_variance":
        return MeanRisk(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior, **bounds)
    if objective == "target_return":
        if target_return is None:
            raise DomainValueError("target_return", "objective target_return needs target_return (annualised)")
        return MeanRisk(risk_measure=RiskMeasure.VARIANCE, min_return=target_return / PERIODS_PER_YEAR,
                        prior_estimator=prior, **bounds)  # fmt: skip
    if objective == "risk_parity":
        return RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior, **bounds)
    if objective == "hrp":
        return HierarchicalRiskParity(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior, **bounds)
    if objective == "equal_weight":
        return EqualWeighted()
    raise DomainValueError("objective", f"must be one of {list(OBJECTIVES)}, got {objective!r}")


def _fit(estimator: Any, returns: FloatArray, objective: str) -> FloatArray:
    import warnings

    from skfolio.exceptions import ConvexOptimizationError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(returns)
    except ConvexOptimizationError:
        argument = "target_return" if objective == "target_return" else "objective"
        reason = {
            "max_sharpe": "no long-only portfolio has a mean return above the risk-free rate in this window",
            "target_return": "the target return is above what any long-only portfolio reached in this window",
        }.get(objective, "the solver found no solution")
        raise OptimizationInfeasible(argument, f"{objective} has no solution: {reason}") from None
    except (ValueError, ArithmeticError) as error:  # skfolio/scipy refusing degenerate inputs
        raise OptimizationInfeasible(
            "objective", f"{objective} cannot be fitted on these returns: {error}"[:300]
        ) from None
    weights = np.asarray(estimator.weights_, dtype=np.float64)
    if not np.isfinite(weights).all():
        raise OptimizationInfeasible("objective", f"{objective} gave no finite weights for these returns")
    return weights


def allocate(
    returns: FloatArray,
    symbols: Sequence[str],
    objective: Objective,
    constraints: Constraints | None = None,
    mu: MuEstimator = "sample",
    covariance: CovEstimator = "sample",
    target_return: float | None = None,
    risk_free_rate: float = 0.0,
) -> Allocation:
    """Weights for ``objective`` fitted on ``returns`` (rows = bars, columns = ``symbols``)."""
    r = check_returns(returns, symbols)
    low, high = (constraints or Constraints()).arrays(symbols)
    estimator = _estimator(objective, low, high, mu, covariance, target_return, risk_free_rate)
    raw = _fit(estimator, r, objective)
    weights = np.clip(raw, 0.0, None)
    weights = weights / weights.sum()  # solver noise: tiny negatives and a sum of 1 +- 1e-9
    mu_name, cov_name = estimator_names(objective, mu, covariance)
    return Allocation(
        objective=objective,
        weights={s: float(w) for s, w in zip(symbols, weights, strict=True)},
        method=_METHODS[objective],
        mu_estimator=mu_name,
        covariance_estimator=cov_name,
    )


@dataclass(frozen=True)
class OutOfSample:
    allocation: Allocation
    train_bars: int
    test_bars: int
    train: Performance
    test: Performance
    equal_weight_test: Performance


def out_of_sample(
    returns: FloatArray,
    symbols: Sequence[str],
    objective: Objective,
    train_fraction: float,
    constraints: Constraints | None = None,
    mu: MuEstimator = "sample",
    covariance: CovEstimator = "sample",
    target_return: float | None = None,
    risk_free_rate: float = 0.0,
) -> OutOfSample:
    """Fit on the first ``train_fraction`` of the bars; hold the weights over the rest; compare 1/N there."""
    r = np.asarray(returns, dtype=np.float64)
    if not 0.0 < train_fraction < 1.0:
        raise DomainValueError("train_fraction", f"must lie strictly between 0 and 1, got {train_fraction}")
    cut = int(r.shape[0] * train_fraction)
    if cut < MIN_BARS or r.shape[0] - cut < MIN_BARS:
        raise DomainValueError(
            "lookback",
            f"{r.shape[0]} returns split at {train_fraction} leaves fewer than {MIN_BARS} on one side; "
            "load more bars or move train_fraction",
        )
    train, test = r[:cut], r[cut:]
    allocation = allocate(train, symbols, objective, constraints, mu, covariance, target_return, risk_free_rate)
    w = np.array([allocation.weights[s] for s in symbols])
    equal = np.full(len(symbols), 1.0 / len(symbols))
    return OutOfSample(
        allocation=allocation,
        train_bars=cut,
        test_bars=r.shape[0] - cut,
        train=performance(train, w, risk_free_rate),
        test=performance(test, w, risk_free_rate),
        equal_weight_test=performance(test, equal, risk_free_rate),
    )


@dataclass(frozen=True)
class FrontierPoint:
    annual_return: float
    annual_volatility: float
    sharpe: float | None
    weights: dict[str, float]


def efficient_frontier(
    returns: FloatArray,
    symbols: Sequence[str],
    points: int,
    constraints: Constraints | None = None,
    mu: MuEstimator = "sample",
    covariance: CovEstimator = "sample",
    risk_free_rate: float = 0.0,
) -> list[FrontierPoint]:
    """``points`` mean-variance efficient portfolios from minimum variance to maximum return (skfolio
    ``MeanRisk(efficient_frontier_size=points)``), each with its in-sample annual return and volatility
    computed by `performance` on the same returns, ordered by volatility."""
    if not 2 <= points <= 100:
        raise DomainValueError("points", f"must be between 2 and 100, got {points}")
    r = check_returns(returns, symbols)
    low, high = (constraints or Constraints()).arrays(symbols)
    estimator = _estimator("min_variance", low, high, mu, covariance, None, risk_free_rate, frontier_points=points)
    weights = np.atleast_2d(_fit(estimator, r, "min_variance"))
    out = []
    for row in weights:
        w = np.clip(row, 0.0, None)
        w = w / w.sum()
        perf = performance(r, w, risk_free_rate)
        out.append(
            FrontierPoint(
                perf.annual_return, perf.annual_volatility, perf.sharpe, dict(zip(symbols, w.tolist(), strict=True))
            )
        )
    return sorted(out, key=lambda p: p.annual_volatility)


def estimator_names(
    objective: Objective | Literal["frontier"], mu: MuEstimator, covariance: CovEstimator
) -> tuple[str, str]:
    """The (expected returns, covariance) estimator names a result states."""
    uses_mu = objective in ("max_sharpe", "target_return", "frontier")
    mu_name = _MU_NAMES[mu] if uses_mu else "not used"
    return mu_name, _COV_NAMES[covariance] if objective != "equal_weight" else "not used"
