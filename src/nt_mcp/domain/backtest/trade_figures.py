"""The trade table's columns and the per-trade figures of the metrics in two compiled passes.

`TradeTable.from_records` and `compute_metrics` computed these with a dozen NumPy expressions each
(temporaries, masks, compactions: ~1 ms for 20,000 trades, more than the simulation's own per-trade
work). Here they are one pass over the records (`trade_columns`) and one over the trades
(`trade_figures`), computing the same IEEE 754 operations on the same operands in the same order as
those expressions, so the same numbers bit for bit (tests/unit/test_trade_figures.py compares them):

- element-wise formulas (``pnl``, ``return_pct``) are the same operations per element;
- sums are NumPy's: ``np.add.reduce`` over a contiguous float64 array starts from ``0.0`` and adds
  the pairwise sum of the array (`pairwise_sum`, NumPy's ``pairwise_sum`` blocked 8-way below 128
  values, split in halves rounded down to a multiple of 8 above);
- ``np.mean`` is that sum divided by the count; a mean of booleans is an exact integer count over it;
- max and min are exact; any NaN makes them NaN, as NumPy's do.

The logarithms of the geometric mean stay NumPy's (``np.log`` may round differently from the C
library's ``log`` the compiled code would call): `trade_figures` returns the growth factors for them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_LEAF = 128  # NumPy's PW_BLOCKSIZE


@njit(cache=True, inline="always")
def _leaf_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """NumPy's pairwise sum of ``a[lo:lo+n]`` for ``n <= 128``: in order below 8 values; else eight
    running sums over the multiples of 8, combined ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))``, then the
    rest in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = lo + 8
    stop = lo + n - n % 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum(a, n):  # type: ignore[no-untyped-def]
    """``np.add.reduce(a[:n])`` for contiguous float64 ``a``, bit for bit: ``0.0 + S(0, n)`` with
    ``S(lo, m) = S(lo, h) + S(lo + h, m - h)``, ``h = m // 2 - (m // 2) % 8``, for ``m > 128`` and the
    leaf sum (`_leaf_sum`) below. The recursion runs on an explicit stack (numba cannot cache a
    recursive function): a node's left value waits in ``part`` while its right half is summed."""
    if n <= _LEAF:
        return 0.0 + _leaf_sum(a, 0, n)
    node_lo = np.empty(64, dtype=np.int64)  # depth <= log2(n / 64) + 1
    node_n = np.empty(64, dtype=np.int64)
    right = np.zeros(64, dtype=np.bool_)  # the node's left half is done, its right half runs
    part = np.empty(64, dtype=np.float64)
    top = 0
    node_lo[0] = 0
    node_n[0] = n
    while True:
        m = node_n[top]
        if m > _LEAF:  # descend into the left half
            h = m // 2
            h -= h % 8
            top += 1
            node_lo[top] = node_lo[top - 1]
            node_n[top] = h
            right[top] = False
            continue
        val = _leaf_sum(a, node_lo[top], m)
        while True:  # hand the value up
            if top == 0:
                return 0.0 + val
            top -= 1
            if right[top]:
                val = part[top] + val
                right[top] = False
                continue
            part[top] = val  # left half done: sum the right half next
            right[top] = True
            h = node_n[top] // 2
            h -= h % 8
            top += 1
            node_lo[top] = node_lo[top - 1] + h
            node_n[top] = node_n[top - 1] - h
            right[top] = False
            break


@njit(cache=True, error_model="numpy")  # x / 0 is inf or NaN, as in NumPy, not an exception
def trade_columns(rec, last_close):  # type: ignore[no-untyped-def]
    """The columns of `engine.TradeTable` from the kernel's trade records (``rec[t] = entry bar, exit
    bar, entry price, exit price, size, commission, reason``): the bars and reasons as int64 (truncated,
    as ``astype``), the prices, sizes and commissions as contiguous copies, and with ``marked`` the exit
    price, or ``last_close`` for an open trade (``exit bar < 0``), ``pnl = size * (marked - entry) -
    commission`` and ``return_pct = sign(size) * (marked / entry - 1) - commission / (|size| * entry)``
    (``sign`` as ``np.sign``: -1, 0, +1, NaN for NaN)."""
    m = rec.shape[0]
    entry_bar = np.empty(m, dtype=np.int64)
    exit_bar = np.empty(m, dtype=np.int64)
    reason = np.empty(m, dtype=np.int64)
    entry_price = np.empty(m, dtype=np.float64)
    exit_price = np.empty(m, dtype=np.float64)
    size = np.empty(m, dtype=np.float64)
    commission = np.empty(m, dtype=np.float64)
    pnl = np.empty(m, dtype=np.float64)
    return_pct = np.empty(m, dtype=np.float64)
    for t in range(m):
        xb = np.int64(rec[t, 1])
        entry = rec[t, 2]
        s = rec[t, 4]
        c = rec[t, 5]
        marked = last_close if xb < 0 else rec[t, 3]
        sign = 1.0 if s > 0.0 else (-1.0 if s < 0.0 else (0.0 if s == 0.0 else s))
        entry_bar[t] = np.int64(rec[t, 0])
        exit_bar[t] = xb
        reason[t] = np.int64(rec[t, 6])
        entry_price[t] = entry
        exit_price[t] = rec[t, 3]
        size[t] = s
        commission[t] = c
        pnl[t] = s * (marked - entry) - c
        return_pct[t] = sign * (marked / entry - 1.0) - c / (abs(s) * entry)
    return entry_bar, exit_bar, entry_price, exit_price, size, commission, pnl, return_pct, reason


@njit(cache=True, error_model="numpy")
def trade_figures(entry_bars, exit_bars, pnl, returns, commissions, n_bars):  # type: ignore[no-untyped-def]
    """The per-trade figures of `metrics.compute_metrics`, as `metrics.trade_metrics` (on the closed
    trades, ``exit_bars >= 0``), `metrics.exposure` and ``commissions.sum()`` compute them. Returns
    ``(closed, win_rate, best, worst, profit_factor, expectancy, growth, covered, commission)``:
    ``growth = 1 + r`` of the closed trades' returns (for the geometric mean, whose logarithms NumPy
    takes); ``covered`` the bars in the union of the trades' ``[entry, exit]`` (an open trade to the last
    bar), -1 if the entry bars are not in order (then `metrics.exposure` sorts them). The figures are
    NaN without a closed trade, as there."""
    m = entry_bars.shape[0]
    ret_c = np.empty(m, dtype=np.float64)  # the closed trades' returns, in order (then their growth)
    closed = 0
    wins = 0
    best = -np.inf
    worst = np.inf
    nan_seen = False
    covered = 0
    reach = -1  # the furthest exit so far
    for t in range(m):
        start = entry_bars[t]
        end = exit_bars[t]
        if end >= 0:
            r = returns[t]
            ret_c[closed] = r
            closed += 1
            wins += 1 if pnl[t] > 0.0 else 0  # a select, not a branch: the sign of a pnl is a coin flip
            nan_seen |= r != r
            best = r if r > best else best  # NaN passed over (then nan_seen decides)
            worst = r if r < worst else worst
        else:
            end = n_bars - 1
        if covered >= 0:
            if t > 0 and start < entry_bars[t - 1]:
                covered = -1
            else:
                first = max(start, reach + 1)
                if end >= first:
                    covered += end - first + 1
                reach = max(reach, end)
    commission = pairwise_sum(commissions, m)
    if closed == 0:
        return 0, np.nan, np.nan, np.nan, np.nan, np.nan, ret_c[:0], covered, commission
    if nan_seen:
        best = np.nan
        worst = np.nan
    buf = np.empty(closed, dtype=np.float64)  # the positive returns, then the negative ones, in order
    k = 0
    for t in range(closed):  # compaction without a branch: always store, advance past the kept ones
        r = ret_c[t]
        buf[k] = r
        k += 1 if r < 0.0 else 0
    losses = abs(pairwise_sum(buf, k))
    k = 0
    for t in range(closed):
        r = ret_c[t]
        buf[k] = r
        k += 1 if r > 0.0 else 0
    profit_factor = pairwise_sum(buf, k) / losses if losses else np.nan
    expectancy = pairwise_sum(ret_c, closed) / closed
    for t in range(closed):  # the growth factors, in place
        ret_c[t] = 1.0 + ret_c[t]
    return closed, wins / closed, best, worst, profit_factor, expectancy, ret_c[:closed], covered, commission
