"""The risk manager's measures: VaR and CVaR four ways, volatility, beta, correlation, drawdown, stress.

Pure NumPy (SciPy only for the normal distribution), no I/O. Inputs are per-bar **simple** returns
``r[t] = close[t] / close[t-1] - 1`` of the assets, one column per asset, aligned on the same bars, and
the portfolio's signed exposures ``v[i]`` in currency (market value of each position; a weight times the
portfolio value). The portfolio's return on bar t is ``r_p[t] = sum_i v[i] * r[t, i] / V`` with
``V = sum_i |v[i]|`` (the gross exposure; for a long-only portfolio, its value): the exposures are held
constant, i.e. rebalanced every bar.

Sign conventions (every figure a tool returns):

- **VaR and CVaR are positive losses**: ``VaR = 0.02`` means a 2 % loss of ``V``; in currency ``VaR * V``.
  A negative VaR means even the tail of the distribution is a gain (strong drift, short window).
- ``confidence`` c in (0, 1), e.g. 0.95; the tail is the worst ``1 - c`` of outcomes.
- ``horizon`` h bars: the loss over h bars held without trading.
- Volatility is the sample standard deviation (ddof=1) of per-bar returns times ``sqrt(periods_per_year)``
  (252 for daily bars), as empyrical's ``annual_volatility``.
- Max drawdown is the deepest fall of the compounded value ``prod(1 + r_p)`` from its running peak, a
  **negative** fraction (-0.25 = a 25 % fall), as in the backtest metrics and empyrical's ``max_drawdown``.

VaR methods:

- ``historical``: the empirical distribution of the h-bar returns ``prod_{k<h}(1 + r_p[t+k]) - 1`` over every
  window of h consecutive bars (overlapping; for h = 1 the returns themselves). With n outcomes sorted
  from worst, ``k = (1 - c) * n``: VaR is the (floor(k)+1)-th largest loss (the lower c-quantile of the
  loss, ``inf{l : F_L(l) >= c}``) and CVaR is Rockafellar-Uryasev's mean of the worst ``k`` losses (the
  fractional ``k`` weights the boundary outcome) -- the same definitions as skfolio's
  ``value_at_risk`` / ``cvar``, which the tests compare against.
- ``normal``: mean mu and standard deviation sigma of per-bar returns scaled to h bars as if i.i.d.
  (``mu_h = h mu``, ``sigma_h = sqrt(h) sigma``); ``z = Phi^-1(1 - c)`` (negative);
  ``VaR = -(mu_h + z sigma_h)``, ``CVaR = -mu_h + sigma_h * phi(z) / (1 - c)``.
- ``cornish_fisher``: the normal quantile corrected for the sample skewness S and excess kurtosis K of
  per-bar returns (scaled to h bars as i.i.d. sums: ``S_h = S / sqrt(h)``, ``K_h = K / h``):
  ``z_cf = z + (z^2 - 1) S/6 + (z^3 - 3z) K/24 - (2z^3 - 5z) S^2/36``, ``VaR = -(mu_h + z_cf sigma_h)``.
  CVaR is the mean of that quantile function over the tail, ``-(mu_h + sigma_h/(1-c) * E[z_cf(Z); Z < z])``
  with Z standard normal, in closed form from the truncated-normal moments
  ``E[1; Z<a] = Phi(a)``, ``E[Z; Z<a] = -phi(a)``, ``E[Z^2; Z<a] = Phi(a) - a phi(a)``,
  ``E[Z^3; Z<a] = -(a^2 + 2) phi(a)``. (The expansion is only a good approximation for moderate S and K.)
- ``monte_carlo``: ``n_sims`` paths of h bars drawn (seeded) from a multivariate normal with the assets'
  sample mean vector and covariance matrix; each asset compounds over the path, the portfolio's h-bar
  return is ``sum_i v[i] (prod_k(1 + r[k, i]) - 1) / V``; VaR and CVaR as for ``historical`` on the draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.errors import DomainValueError

FloatArray = npt.NDArray[np.float64]
VarMethod = Literal["historical", "normal", "cornish_fisher", "monte_carlo"]
VAR_METHODS: tuple[VarMethod, ...] = ("historical", "normal", "cornish_fisher", "monte_carlo")
MIN_OBSERVATIONS = 20
PERIODS_PER_YEAR = 252


@dataclass(frozen=True)
class TailRisk:
    """VaR and CVaR as positive fractions of the gross exposure, over ``horizon`` bars at ``confidence``."""

    method: VarMethod
    confidence: float
    horizon: int
    var: float
    cvar: float
    observations: int  # outcomes the figure rests on (windows, or simulated paths)


def check_confidence(confidence: float, argument: str = "confidence") -> None:
    if not (0.0 < confidence < 1.0) or not math.isfinite(confidence):
        raise DomainValueError(argument, f"must lie strictly between 0 and 1, got {confidence}")


def simple_returns(close: FloatArray) -> FloatArray:
    """``close[t] / close[t-1] - 1`` along the first axis (one bar fewer than ``close``)."""
    close = np.asarray(close, dtype=np.float64)
    if (close <= 0).any():
        raise DomainValueError("close", "prices must be positive to form returns")
    return close[1:] / close[:-1] - 1.0


def gross(exposures: FloatArray) -> float:
    return float(np.abs(exposures).sum())


def portfolio_returns(asset_returns: FloatArray, exposures: FloatArray) -> FloatArray:
    """Per-bar portfolio return ``r @ v / sum|v|`` (exposures held constant)."""
    total = gross(exposures)
    if total <= 0:
        raise DomainValueError("portfolio", "the portfolio has no exposure (every position is zero)")
    return np.asarray(asset_returns, dtype=np.float64) @ (np.asarray(exposures, dtype=np.float64) / total)


def horizon_returns(returns: FloatArray, horizon: int) -> FloatArray:
    """Compounded returns over every window of ``horizon`` consecutive bars (overlapping)."""
    if horizon < 1:
        raise DomainValueError("horizon", f"must be at least 1 bar, got {horizon}")
    if horizon == 1:
        return np.asarray(returns, dtype=np.float64)
    if len(returns) < horizon:
        raise DomainValueError("horizon", f"{horizon} bars is longer than the {len(returns)} returns available")
    log_growth = np.concatenate([[0.0], np.cumsum(np.log1p(returns))])
    return np.expm1(log_growth[horizon:] - log_growth[:-horizon])  # type: ignore[no-any-return]


def empirical_var_cvar(outcomes: FloatArray, confidence: float) -> tuple[float, float]:
    """VaR and CVaR (positive losses) of equally likely ``outcomes`` (returns), per the module docstring."""
    check_confidence(confidence)
    losses = np.sort(-np.asarray(outcomes, dtype=np.float64))[::-1]  # worst (largest loss) first
    n = losses.shape[0]
    if n == 0:
        raise DomainValueError("returns", "no outcomes to measure")
    k = (1.0 - confidence) * n
    var_index = min(n - 1, math.floor(k + 4 * np.finfo(float).eps * n))
    var = float(losses[var_index])
    tail = max(0, math.ceil(k) - 1)
    # Rockafellar-Uryasev: the worst `tail` losses in full, the next one for the remaining mass of k.
    cvar = float(losses[:tail].sum() / k + losses[tail] * (1.0 - tail / k))
    return var, cvar


def _normal_z(confidence: float) -> tuple[float, float]:
    from scipy.stats import norm

    z = float(norm.ppf(1.0 - confidence))
    return z, float(norm.pdf(z))


def normal_var_cvar(mu: float, sigma: float, confidence: float, horizon: int) -> tuple[float, float]:
    """Gaussian VaR and CVaR over ``horizon`` bars from per-bar ``mu`` and ``sigma`` (i.i.d. scaling)."""
    check_confidence(confidence)
    z, density = _normal_z(confidence)
    mu_h, sigma_h = mu * horizon, sigma * math.sqrt(horizon)
    return -(mu_h + z * sigma_h), -mu_h + sigma_h * density / (1.0 - confidence)


def cornish_fisher_var_cvar(
    mu: float, sigma: float, skew: float, excess_kurtosis: float, confidence: float, horizon: int
) -> tuple[float, float]:
    """Cornish-Fisher VaR and CVaR over ``horizon`` bars (formulas in the module docstring)."""
    check_confidence(confidence)
    z, density = _normal_z(confidence)
    s, k = skew / math.sqrt(horizon), excess_kurtosis / horizon
    mu_h, sigma_h = mu * horizon, sigma * math.sqrt(horizon)
    z_cf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    tail = 1.0 - confidence
    i0, i1 = tail, -density  # E[1; Z<z] = Phi(z) = 1 - c, E[Z; Z<z] = -phi(z)
    i2, i3 = tail - z * density, -(z**2 + 2) * density
    partial = i1 + s / 6 * (i2 - i0) + k / 24 * (i3 - 3 * i1) - s**2 / 36 * (2 * i3 - 5 * i1)
    return -(mu_h + z_cf * sigma_h), -(mu_h + sigma_h * partial / tail)


def sample_moments(returns: FloatArray) -> tuple[float, float, float, float]:
    """Mean, sample std (ddof=1), skewness and excess kurtosis (population moment ratios, as scipy's
    ``skew`` and ``kurtosis`` with ``bias=True``)."""
    x = np.asarray(returns, dtype=np.float64)
    mu = float(x.mean())
    sigma = float(x.std(ddof=1))
    centred = x - mu
    m2 = float(np.mean(centred**2))
    if m2 <= 0:
        return mu, sigma, 0.0, 0.0
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2 - 3.0
    return mu, sigma, skew, kurt


def monte_carlo_outcomes(
    asset_returns: FloatArray, exposures: FloatArray, horizon: int, n_sims: int, seed: int
) -> FloatArray:
    """Simulated h-bar portfolio returns (multivariate normal per bar, compounded per asset)."""
    r = np.asarray(asset_returns, dtype=np.float64)
    mean = r.mean(axis=0)
    cov = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
    rng = np.random.default_rng(seed)
    weights = np.asarray(exposures, dtype=np.float64) / gross(exposures)
    growth = np.ones((n_sims, r.shape[1]))
    for _ in range(horizon):
        growth *= 1.0 + rng.multivariate_normal(mean, cov, size=n_sims, method="eigh")
    return (growth - 1.0) @ weights


def tail_risk(
    asset_returns: FloatArray,
    exposures: FloatArray,
    method: VarMethod,
    confidence: float,
    horizon: int,
    n_sims: int = 10_000,
    seed: int = 0,
) -> TailRisk:
    """VaR and CVaR of the portfolio by ``method`` (see the module docstring)."""
    check_confidence(confidence)
    r_p = portfolio_returns(asset_returns, exposures)
    if r_p.shape[0] < MIN_OBSERVATIONS:
        raise DomainValueError("lookback", f"{r_p.shape[0]} returns; at least {MIN_OBSERVATIONS} are needed")
    if method == "historical":
        outcomes = horizon_returns(r_p, horizon)
        var, cvar = empirical_var_cvar(outcomes, confidence)
        return TailRisk(method, confidence, horizon, var, cvar, int(outcomes.shape[0]))
    if method == "monte_carlo":
        outcomes = monte_carlo_outcomes(asset_returns, exposures, horizon, n_sims, seed)
        var, cvar = empirical_var_cvar(outcomes, confidence)
        return TailRisk(method, confidence, horizon, var, cvar, n_sims)
    mu, sigma, skew, kurt = sample_moments(r_p)
    if method == "normal":
        var, cvar = normal_var_cvar(mu, sigma, confidence, horizon)
    elif method == "cornish_fisher":
        var, cvar = cornish_fisher_var_cvar(mu, sigma, skew, kurt, confidence, horizon)
    else:
        raise DomainValueError("method", f"must be one of {list(VAR_METHODS)}, got {method!r}")
    return TailRisk(method, confidence, horizon, var, cvar, int(r_p.shape[0]))


def annual_volatility(returns: FloatArray, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """``std(returns, ddof=1) * sqrt(periods_per_year)``."""
    return float(np.std(returns, ddof=1) * math.sqrt(periods_per_year))


def beta(returns: FloatArray, benchmark: FloatArray) -> float:
    """``cov(r, b) / var(b)`` (both with ddof=1, so the ratio is the OLS slope of r on b); NaN when the
    benchmark does not move."""
    b = np.asarray(benchmark, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    var_b = float(np.var(b, ddof=1))
    if var_b == 0:
        return math.nan
    return float(np.cov(r, b, ddof=1)[0, 1] / var_b)


def correlation(a: FloatArray, b: FloatArray) -> float:
    """Pearson correlation; NaN when either series is constant."""
    if np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def correlation_matrix(asset_returns: FloatArray) -> FloatArray:
    """Pearson correlations between columns (NaN for a constant column, 1 on the diagonal)."""
    r = np.asarray(asset_returns, dtype=np.float64)
    std = r.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.atleast_2d(np.corrcoef(r, rowvar=False))
    matrix[:, std == 0] = np.nan
    matrix[std == 0, :] = np.nan
    np.fill_diagonal(matrix, 1.0)
    return np.clip(matrix, -1.0, 1.0)


def max_drawdown(returns: FloatArray) -> float:
    """Deepest fall of ``prod(1 + r)`` from its running peak (starting at 1), a negative fraction or 0."""
    value = np.concatenate([[1.0], np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))])
    peak = np.maximum.accumulate(value)
    return float((value / peak - 1.0).min())


@dataclass(frozen=True)
class ScenarioResult:
    """The P&L of one stress scenario: ``pnl = sum_i v[i] * shock[i]`` (currency), ``pnl_pct = pnl / V``."""

    name: str
    pnl: float
    pnl_pct: float
    contributions: dict[str, float]
    shocks: dict[str, float]


def stress(
    exposures: Mapping[str, float], scenarios: Sequence[tuple[str, Mapping[str, float]]]
) -> list[ScenarioResult]:
    """Apply each named scenario's instantaneous price shocks (fractions: -0.10 = a 10 % fall) to the
    exposures. A shock keyed ``"*"`` applies to every symbol the scenario does not name; symbols with
    neither are unshocked. A shock below -1 (a price below zero) is refused."""
    total = sum(abs(v) for v in exposures.values())
    if total <= 0:
        raise DomainValueError("portfolio", "the portfolio has no exposure (every position is zero)")
    results = []
    for name, shocks in scenarios:
        for symbol, shock in shocks.items():
            if not math.isfinite(shock) or shock < -1.0:
                raise DomainValueError("scenarios", f"{name}: shock {shock} on {symbol} must be finite and >= -1")
        applied = {s: float(shocks.get(s, shocks.get("*", 0.0))) for s in exposures}
        contributions = {s: exposures[s] * applied[s] for s in exposures}
        pnl = float(sum(contributions.values()))
        results.append(ScenarioResult(name, pnl, pnl / total, contributions, applied))
    return results
