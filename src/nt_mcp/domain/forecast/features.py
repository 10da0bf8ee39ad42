"""Lagged log returns in, the next ``horizon`` log returns out: the supervised samples of the forecaster.

With closes ``P[0..n-1]`` the log returns are ``r[j] = ln(P[j+1] / P[j])`` (``n - 1`` of them; ``r[j]`` is
known at bar ``j + 1``'s close). The sample at origin ``i`` (an index into ``r``) has

- features ``x_i = (r[i-L+1], ..., r[i])``: the ``L = lags`` latest returns known at the origin, oldest first;
- targets ``y_i = (r[i+1], ..., r[i+h])``: the next ``h = horizon`` returns (direct multi-step: one
  output per step, all predicted at once).

Origins run from ``L - 1`` to ``len(r) - 1 - h`` for training; the forecast origin is the last return,
``len(r) - 1``, whose targets are not yet known. The cumulative log return to step k,
``c_k = r[i+1] + ... + r[i+k] = ln(P[i+1+k] / P[i+1])``, is what the evaluation scores (the error of a
log-price forecast k bars ahead).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.errors import DomainValueError

FloatArray = npt.NDArray[np.float64]


def log_returns(close: FloatArray) -> FloatArray:
    """``ln(close[j+1] / close[j])``; prices must be positive."""
    c = np.asarray(close, dtype=np.float64)
    if c.ndim != 1 or c.shape[0] < 2:
        raise DomainValueError("bars", "at least two closes are needed to form a return")
    if not (np.isfinite(c).all() and (c > 0).all()):
        raise DomainValueError("close", "closes must be positive and finite")
    return np.diff(np.log(c))


def lag_matrix(returns: FloatArray, lags: int) -> FloatArray:
    """Row ``i - lags + 1`` holds ``x_i`` for every origin ``i >= lags - 1`` (including the last): a
    read-only strided view of ``returns`` (no copy, whatever the length); index it to get rows."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < lags:
        raise DomainValueError("lookback", f"{r.shape[0]} returns is fewer than lookback={lags}")
    return np.lib.stride_tricks.sliding_window_view(r, lags)


def supervised(returns: FloatArray, lags: int, horizon: int) -> tuple[FloatArray, FloatArray]:
    """Features and targets of every training origin ``lags - 1 .. len(r) - 1 - horizon``."""
    r = np.asarray(returns, dtype=np.float64)
    count = r.shape[0] - lags - horizon + 1
    if count < 1:
        raise DomainValueError("bars", f"{r.shape[0]} returns leave no sample for lookback={lags}, horizon={horizon}")
    x = np.ascontiguousarray(lag_matrix(r, lags)[:count])
    y = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(r[lags:], horizon)[:count])
    return x, y


def cumulative(steps: FloatArray) -> FloatArray:
    """Per-step log returns (rows = samples, columns = steps) to cumulative log returns ``c_k``."""
    return np.cumsum(np.asarray(steps, dtype=np.float64), axis=-1)
