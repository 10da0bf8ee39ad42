"""Indicators the strategies read. Each value at bar ``i`` uses bars ``<= i`` only; bars where
an indicator is not yet defined (its warm-up) are NaN.

The ``@njit`` kernels here are called from other kernels directly and from Python through
``compiled(kernel)(...)`` (see `nt_mcp.domain.jit`)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from nt_mcp.domain.jit import compiled

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def _kahan_add(s, c, v):  # type: ignore[no-untyped-def]
    """Compensated ``s + v``: returns the new sum and its running error term."""
    y = v - c
    t = s + y
    return t, (t - s) - y


@njit(cache=True)
def _rolling_mean_std(x, n, want_std):  # type: ignore[no-untyped-def]
    """Rolling mean and sample (ddof=1) standard deviation over ``n`` bars. The window sums move
    by ``x[i] - x[i-n]`` each bar with compensated (Kahan) addition, so long series do not
    accumulate rounding error. The std array is empty unless ``want_std``."""
    m = x.shape[0]
    mean = np.full(m, np.nan)
    std = np.full(m if want_std else 0, np.nan)
    s = 0.0
    cs = 0.0
    q = 0.0
    cq = 0.0
    for i in range(m):
        old = x[i - n] if i >= n else 0.0
        s, cs = _kahan_add(s, cs, x[i] - old)
        if want_std:
            q, cq = _kahan_add(q, cq, x[i] * x[i] - old * old)
        if i >= n - 1:
            mu = s / n
            mean[i] = mu
            if want_std and n > 1:
                var = (q - n * mu * mu) / (n - 1)
                std[i] = np.sqrt(var) if var > 0 else 0.0
    return mean, std


@njit(cache=True)
def sma_crossover_signal(x, fast, slow, down_value, out):  # type: ignore[no-untyped-def]
    """``crossover_signal(sma(x, fast), sma(x, slow), down_value, out)`` in one pass, without the two
    average arrays: the window sums move as in `_rolling_mean_std` (the same compensated additions,
    the same ``s / n``), so every average, and so every signal, is the same bit for bit. Returns the
    warm-up as `warmup_of` the two averages would: the later of the first bars where each is defined
    (the last bar for an average never defined)."""
    m = x.shape[0]
    sf = 0.0
    cf = 0.0
    ss = 0.0
    cs = 0.0
    prev_f = np.nan
    prev_s = np.nan
    first_f = -1
    first_s = -1
    for i in range(m):
        v = x[i]
        sf, cf = _kahan_add(sf, cf, v - (x[i - fast] if i >= fast else 0.0))
        ss, cs = _kahan_add(ss, cs, v - (x[i - slow] if i >= slow else 0.0))
        mf = sf / fast if i >= fast - 1 else np.nan
        ms = ss / slow if i >= slow - 1 else np.nan
        if first_f < 0 and not np.isnan(mf):
            first_f = i
        if first_s < 0 and not np.isnan(ms):
            first_s = i
        if i > 0 and prev_f < prev_s and mf > ms:
            out[i] = 1.0
        elif i > 0 and prev_f > prev_s and mf < ms:
            out[i] = down_value
        else:
            out[i] = np.nan
        prev_f = mf
        prev_s = ms
    return max(first_f if first_f >= 0 else m - 1, first_s if first_s >= 0 else m - 1)


def sma(x: FloatArray, n: int) -> FloatArray:
    """Simple moving average ``mean(x[i-n+1..i])``; NaN for the first ``n - 1`` bars."""
    mean, _ = compiled(_rolling_mean_std)(x, n, False)
    return mean  # type: ignore[no-any-return]


def rolling_zscore(x: FloatArray, n: int) -> FloatArray:
    """``z[i] = (x[i] - mean) / std`` over the last ``n`` bars (sample std, ddof=1); NaN in the
    warm-up and where the std is 0."""
    mean, std = compiled(_rolling_mean_std)(x, n, True)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean) / std
    z[~np.isfinite(z)] = np.nan
    return z  # type: ignore[no-any-return]


def rate_of_change(x: FloatArray, n: int) -> FloatArray:
    """``x[i] / x[i-n] - 1``; NaN for the first ``n`` bars."""
    out = np.full(x.shape[0], np.nan)
    out[n:] = x[n:] / x[:-n] - 1.0
    return out


@njit(cache=True)
def wilder_mean(x, n):  # type: ignore[no-untyped-def]
    """Wilder's smoothing (an EMA with ``alpha = 1/n``) seeded with the plain mean of the first
    ``n`` values of ``x`` (from its first non-NaN value): ``w[i] = w[i-1] + (x[i] - w[i-1]) / n``."""
    m = x.shape[0]
    out = np.full(m, np.nan)
    start = 0
    while start < m and np.isnan(x[start]):
        start += 1
    if start + n > m:
        return out
    acc = 0.0
    for i in range(start, start + n):
        acc += x[i]
    w = acc / n
    out[start + n - 1] = w
    for i in range(start + n, m):
        w += (x[i] - w) / n
        out[i] = w
    return out


def rsi(close: FloatArray, n: int) -> FloatArray:
    """Wilder's RSI: ``100 - 100 / (1 + avg_gain / avg_loss)`` with gains and losses of
    close-to-close changes smoothed by :func:`wilder_mean`; 100 when there is no loss.
    First defined at bar ``n``."""
    change = np.empty_like(close)
    change[0] = np.nan
    change[1:] = np.diff(close)
    gain = compiled(wilder_mean)(np.where(change > 0, change, np.where(np.isnan(change), np.nan, 0.0)), n)
    loss = compiled(wilder_mean)(np.where(change < 0, -change, np.where(np.isnan(change), np.nan, 0.0)), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + gain / loss)
    out[(loss == 0) & ~np.isnan(gain)] = 100.0
    return out  # type: ignore[no-any-return]


def atr(high: FloatArray, low: FloatArray, close: FloatArray, n: int) -> FloatArray:
    """Average true range (Wilder): true range ``max(h - l, |h - c[i-1]|, |l - c[i-1]|)``
    (``h - l`` on the first bar) smoothed by :func:`wilder_mean`. First defined at bar ``n - 1``."""
    prev = np.empty_like(close)
    prev[0] = close[0]
    prev[1:] = close[:-1]
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    return compiled(wilder_mean)(tr, n)  # type: ignore[no-any-return]


@njit(cache=True)
def rolling_max_min(high, low, n):  # type: ignore[no-untyped-def]
    """Highest high and lowest low of the ``n`` bars BEFORE bar ``i`` (``i-n..i-1``), with
    monotonic deques: O(len). NaN for the first ``n`` bars."""
    m = high.shape[0]
    hi = np.full(m, np.nan)
    lo = np.full(m, np.nan)
    qh = np.empty(m, dtype=np.int64)
    ql = np.empty(m, dtype=np.int64)
    h0 = 0
    h1 = 0
    l0 = 0
    l1 = 0
    for i in range(m):
        if i >= n:
            while qh[h0] < i - n:
                h0 += 1
            while ql[l0] < i - n:
                l0 += 1
            hi[i] = high[qh[h0]]
            lo[i] = low[ql[l0]]
        while h1 > h0 and high[qh[h1 - 1]] <= high[i]:
            h1 -= 1
        qh[h1] = i
        h1 += 1
        while l1 > l0 and low[ql[l1 - 1]] >= low[i]:
            l1 -= 1
        ql[l1] = i
        l1 += 1
    return hi, lo


@njit(cache=True)
def crossover_signal(fast, slow, down_value, out):  # type: ignore[no-untyped-def]
    """Write into ``out``: +1 where ``fast`` crosses above ``slow`` at bar ``i``
    (``fast[i-1] < slow[i-1]`` and ``fast[i] > slow[i]``), ``down_value`` on the mirror cross,
    NaN elsewhere (hold). Comparisons with NaN are false, so warm-up bars never signal."""
    out[0] = np.nan
    for i in range(1, fast.shape[0]):
        if fast[i - 1] < slow[i - 1] and fast[i] > slow[i]:
            out[i] = 1.0
        elif fast[i - 1] > slow[i - 1] and fast[i] < slow[i]:
            out[i] = down_value
        else:
            out[i] = np.nan
    return out
