"""The forecasts a model must beat, fitted on the same training windows and scored on the same origins.

Each baseline predicts the next ``h`` per-step log returns from an origin, as the network does:

- ``naive``: zero (no change: the random walk; tomorrow's price is today's).
- ``drift``: the training window's mean log return at every step (the historical mean).
- ``arima``: ARIMA(p,0,0) with a constant on log returns -- an autoregression
  ``r[t] = c + phi_1 r[t-1] + ... + phi_p r[t-p] + e[t]`` fitted by statsmodels' ``AutoReg`` (OLS) on
  the training window, p in 1..5 chosen by AIC (``ar_select_order``). Its h-step forecast from an origin
  is the usual recursion: known returns where available, the model's own forecasts beyond the origin.
  Parameters are fitted once per training window and applied to every test origin of that fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BASELINES = ("naive", "drift", "arima")
DESCRIPTIONS = {
    "naive": "zero return at every step (no change, random walk)",
    "drift": "the training window's mean log return at every step (historical mean)",
    "arima": "ARIMA(p,0,0) with constant on log returns (statsmodels AutoReg, p <= 5 by AIC), recursive",
}
MAX_AR_ORDER = 5


@dataclass(frozen=True)
class ARFit:
    """``r[t] = const + sum_j phi[j] * r[t-1-j]`` (order p >= 1)."""

    const: float
    phi: FloatArray

    @property
    def order(self) -> int:
        return int(self.phi.shape[0])


def fit_ar(train_returns: FloatArray) -> ARFit:
    """AutoReg on the training returns with the AIC-best order in 1..5 (statsmodels)."""
    import warnings

    from statsmodels.tsa.ar_model import AutoReg, ar_select_order

    r = np.asarray(train_returns, dtype=np.float64)
    max_lag = max(1, min(MAX_AR_ORDER, r.shape[0] // 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selected = ar_select_order(r, maxlag=max_lag, ic="aic", trend="c")
        lags = selected.ar_lags or [1]
        order = max(lags)
        result = AutoReg(r, lags=order, trend="c").fit()
    params = np.asarray(result.params, dtype=np.float64)
    return ARFit(const=float(params[0]), phi=params[1 : order + 1].copy())


def ar_forecast(fit: ARFit, lagged: FloatArray, horizon: int) -> FloatArray:
    """Forecasts for each row of ``lagged`` (the latest returns at each origin, oldest first; at least
    ``fit.order`` columns): the next ``horizon`` per-step log returns, recursively."""
    history = np.asarray(lagged, dtype=np.float64)[:, -fit.order :]
    out = np.empty((history.shape[0], horizon))
    window = history.copy()
    for step in range(horizon):
        nxt = fit.const + window[:, ::-1] @ fit.phi
        out[:, step] = nxt
        window = np.concatenate([window[:, 1:], nxt[:, None]], axis=1)
    return out


def naive_forecast(rows: int, horizon: int) -> FloatArray:
    return np.zeros((rows, horizon))


def drift_forecast(train_returns: FloatArray, rows: int, horizon: int) -> FloatArray:
    return np.full((rows, horizon), float(np.mean(train_returns)))
