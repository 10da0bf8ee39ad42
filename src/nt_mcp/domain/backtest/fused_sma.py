"""The SMA crossover backtest in one kernel: signals, simulation and the equity path, in two tight loops.

`sma_crossover_backtest` is what ``run_strategy(bars, "sma_crossover", ...)`` runs when no protective
exit is set. It gives the numbers of the two-step path (`indicators.sma_crossover_signal`, then
`kernel.simulate`, then `metrics._equity_path`) bit for bit, without the signal array, the first pass
of `kernel.max_trades` or a second pass over the equity:

- `crossover_events` lists the bars that signal, and their signals; the crossover decision is the
  compensated (Kahan) averages' (see below), without their cost;
- the simulation is `kernel._simulate_without_exits`'s, the same floating-point operations in the same
  order, taking each signal from that list at the bar after it;
- the equity path is `metrics.path_step`, run on each bar's equity as it is produced.

**Exact decisions from plain sums.** The reference averages are ``mean = s_K / n`` where ``s_K`` is the
Kahan running sum of the increments ``d_j = fl(x[j] - x[j - n])`` (pandas' and backtesting.py's
rolling mean), four dependent additions a bar. A signal only needs the sign of ``mean_f - mean_s``. This
pass keeps plain running sums ``s_P`` (one addition a bar), re-anchored at the start of every block of
``K`` bars (`block_bars`: at least eight slow windows) by summing the window afresh, and bounds, for each
window, ``|s_K - s_P| <= E_K + E_P``, with ``S`` the exact window sum, ``u = 2**-53`` and ``M`` the
largest ``|x|`` the block's windows read; the range ``[lo, hi]`` of the values they read (or a wider
one: the bound only grows with it) comes from a first pass over the block (`_block_range`) for the first
two blocks, and for the next ones from the loop over the block before, which reads, with each bar ``j``,
the value ``x[j + K]`` one block ahead (``x[n - 1]`` past the end) into running extremes (every bar of a
block but its first passes through that loop once the warm-up is over), joined with `_block_range` of
the ``slow + 1`` values that loop did not read (no second pass over the bars); so ``M = max(|lo|, |hi|)``
and every ``|d_j| <= hi - lo`` (``<= M`` for ``j < n``, where ``d_j = x[j]``); the sums of ``|d_j|`` below
are taken as ``1.001 K (hi - lo)``:

- ``|s_K - S| <= E_K = 4u A``, ``A = sum_{j<=i} |d_j|`` (taken at the block's end; the floating-point
  sum is below the exact one by a factor of at most ``1 - i u``). The Kahan sum of the ``d_j`` is within
  ``(2u + O(i u^2)) A`` of ``sum d_j`` (Knuth, TAOCP vol. 2, 4.2.2 ex. 19; Goldberg 1991, Theorem 8),
  and ``sum d_j`` within ``u A`` of ``S`` (each ``d_j`` is rounded once; the exact differences telescope
  to ``S``): ``3u A`` plus terms of order ``i u^2 A``, below ``u A`` for any ``i`` below ``10^12`` bars.
- ``|s_P - S| <= E_P = 2u ((n - 1) n M + sum_block |d_j| + 1.001 K n M)``: the anchor's recursive sum
  of ``n`` values, each ``|x| <= M``, is within ``(n - 1) u n M / (1 - (n - 1) u)`` of its exact sum;
  after it each bar adds at most ``u |d_j|`` (rounding the increment) and ``u |s_P|`` (rounding the
  addition), ``|s_P| <= n M`` up to these errors. The factor 2 covers the ``(1 - k u)`` denominators
  and the rounding of the bound itself. (Block 0 starts from an empty sum: no anchor term, same bound.)

The estimate ``D = s_P,f (1 / f) - s_P,s (1 / s)`` differs from ``mean_f - mean_s`` by at most
``B = E_f / f + E_s / s + 8u (2.002 M)`` (the last term covers the reciprocals, the products, the
subtraction and the rounding of the two reference divisions, each ``<= 2u`` of a value ``<= 1.001 M``);
the kernel multiplies ``B`` by ``1 + 2^-20`` against the rounding of its own computation. So ``D > B``
proves ``mean_f > mean_s`` and ``D < -B`` proves ``mean_f < mean_s``, with one comparison a bar against
the block's ``B``. A bar with ``|D| <= B`` (a near tie, or an exact one, e.g. a flat stretch of prices) is
decided exactly: the Kahan sums are brought up to that bar (the same `_kahan_add` calls, resumed where they
last stopped, so at most one compensated pass over the series in all) and the reference averages
compared. tests/unit/test_fused_sma.py checks the signals against `sma_crossover_signal` on near-tie
series built to hit that path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nt_mcp.domain.backtest.kernel import (
    EXIT_END,
    EXIT_OPEN,
    EXIT_RUIN,
    EXIT_SIGNAL,
    _close_fill,
    _open_fill,
)
from nt_mcp.domain.backtest.metrics import path_step
from nt_mcp.domain.strategies.indicators import _kahan_add

BLOCK_BARS = 1024  # bars per block (re-anchor and error bound), at least 8 slow windows
_U = 2.0**-53
_U1 = np.uint64(1)
_FILL = np.uint64(32)  # bars a flat segment is filled at a time
_MIN_POSITIVE = 5e-324  # the smallest positive double: eq >= it exactly when eq > 0


@njit(cache=True)
def _anchor(x, i, n):  # type: ignore[no-untyped-def]
    """The plain sum of ``x[i-n+1..i]``, left to right."""
    s = 0.0
    for j in range(i - n + 1, i + 1):
        s += x[j]
    return s


@njit(cache=True)
def _block_range(x, start, stop):  # type: ignore[no-untyped-def]
    """The smallest and largest of ``x[start:stop]`` (four interleaved running extremes: no dependency
    chain of one comparison a value; each a compare-and-select, ``v if v < lo else lo``, one ``minsd``).
    A NaN is passed over, unless it is ``x[start]`` (then both are NaN, and so is the block's bound: every
    bar of the block takes the exact sums); a window holding a NaN has a NaN estimate, which takes the
    exact sums too. (The running extremes gathered one block ahead pass over NaNs alike.)"""
    lo0 = lo1 = lo2 = lo3 = x[start]
    hi0 = hi1 = hi2 = hi3 = x[start]
    j = start
    while j + 4 <= stop:
        v0 = x[j]
        v1 = x[j + 1]
        v2 = x[j + 2]
        v3 = x[j + 3]
        lo0 = v0 if v0 < lo0 else lo0
        hi0 = v0 if v0 > hi0 else hi0
        lo1 = v1 if v1 < lo1 else lo1
        hi1 = v1 if v1 > hi1 else hi1
        lo2 = v2 if v2 < lo2 else lo2
        hi2 = v2 if v2 > hi2 else hi2
        lo3 = v3 if v3 < lo3 else lo3
        hi3 = v3 if v3 > hi3 else hi3
        j += 4
    while j < stop:
        v = x[j]
        lo0 = v if v < lo0 else lo0
        hi0 = v if v > hi0 else hi0
        j += 1
    lo0 = lo1 if lo1 < lo0 else lo0
    lo2 = lo3 if lo3 < lo2 else lo2
    hi0 = hi1 if hi1 > hi0 else hi0
    hi2 = hi3 if hi3 > hi2 else hi2
    return (lo2 if lo2 < lo0 else lo0), (hi2 if hi2 > hi0 else hi0)


@njit(cache=True)
def _kahan_through(x, start, stop, fast, slow, sf, cf, ss, cs):  # type: ignore[no-untyped-def]
    """The compensated window sums of `sma_crossover_signal` (the same `_kahan_add` calls) moved on from
    bar ``start`` through bar ``stop``."""
    for j in range(start, stop + 1):
        v = x[j]
        sf, cf = _kahan_add(sf, cf, v - (x[j - fast] if j >= fast else 0.0))
        ss, cs = _kahan_add(ss, cs, v - (x[j - slow] if j >= slow else 0.0))
    return sf, cf, ss, cs


@njit(cache=True, error_model="numpy")  # x / 0 is inf or NaN, as in NumPy (`trade_figures.trade_columns`)
def _pnl_and_return(size, entry, marked, commission):  # type: ignore[no-untyped-def]
    """A trade's ``pnl`` and ``return_pct`` as `engine.TradeTable` defines them (the operations of
    `trade_figures.trade_columns`), ``marked`` its exit price or the last close."""
    sign = 1.0 if size > 0.0 else (-1.0 if size < 0.0 else (0.0 if size == 0.0 else size))
    return size * (marked - entry) - commission, sign * (marked / entry - 1.0) - commission / (abs(size) * entry)


@njit(cache=True, inline="always")
def _record(ints, floats, k, entry_bar, exit_bar, entry_price, exit_price, size, commission, reason, marked):  # type: ignore[no-untyped-def]
    """Trade ``k`` into the column tables: ``ints`` rows entry bar, exit bar, reason; ``floats`` rows entry
    price, exit price, size, commission, pnl, return_pct (``marked``: the exit price, or the last close for
    a trade still open)."""
    ints[0, k] = entry_bar
    ints[1, k] = exit_bar
    ints[2, k] = reason
    floats[0, k] = entry_price
    floats[1, k] = exit_price
    floats[2, k] = size
    floats[3, k] = commission
    floats[4, k], floats[5, k] = _pnl_and_return(size, entry_price, marked, commission)


@njit(cache=True)
def crossover_events(close, fast, slow, down_value, signals, capacity):  # type: ignore[no-untyped-def]
    """The bars where `sma_crossover_signal` signals, and their signals, in one pass of plain sums (see the
    module docstring). ``signals``: empty, or one NaN per bar to receive them (+1 up, ``down_value``
    down). Returns ``(bars, values, count, kahan_bars)``: ``bars[:count]`` the signal bars in order,
    ``values[:count]`` their signals; ``count`` is -1 if there are more than ``capacity`` (at most one a
    bar, from bar ``slow`` on: ``n - slow + 1`` always suffices).

    Block by block; within a block, past the warm-up, a tight inner loop moves the two sums on while the
    averages stay, provably, on the side of the last bar (``d * rel > bound``), and records a bar proven on
    the other side (``d * rel < -bound``: a crossover) without leaving it; any other bar (a near tie, an
    undefined side, the warm-up, a full event list) leaves it for the general step. In that loop ``d * rel``
    is taken as ``pf * (rf * rel) - ps * (rs * rel)``: the same number for ``rel = +-1`` (negation is exact
    and rounding symmetric), and 0 or NaN, never above the bound, for ``rel = 0``; one product a bar fewer
    (the loop and its exits were ~0.17 ms of ~2.2 at 1M bars faster, in-process A/B)."""
    n = close.shape[0]
    ev_bar = np.empty(capacity, dtype=np.int64)
    ev_val = np.empty(capacity, dtype=np.float64)
    count = 0
    record = signals.shape[0] == n
    rf = 1.0 / fast
    rs = 1.0 / slow
    block_bars = max(BLOCK_BARS, 8 * slow)
    pf = 0.0  # plain sums
    ps = 0.0
    af = 0.0  # sum |d_j| up to the current block's end
    as_ = 0.0
    kf = 0.0  # the exact sums, run lazily: bars [0, kahan_at) are in them
    kcf = 0.0
    ks = 0.0
    kcs = 0.0
    kahan_at = 0
    kahan_bars = 0
    rel = 0.0  # sign(mean_f - mean_s) at the previous bar: +1.0, -1.0, or 0.0 (a tie, or undefined)
    u_fast = np.uint64(fast)
    u_slow = np.uint64(slow)
    start = 0
    ahead = False
    nlo = np.inf
    nhi = -np.inf
    u_k = np.uint64(block_bars)
    u_last = np.uint64(max(n - 1, 0))
    while start < n:
        stop = min(start + block_bars, n)
        u_stop = np.uint64(stop)
        if ahead:  # the previous block's loop gathered this block's range but for its first slow + 1 values
            lo, hi = _block_range(close, start - slow, start + 1)
            lo = nlo if nlo < lo else lo
            hi = nhi if nhi > hi else hi
        else:
            lo, hi = _block_range(close, max(start - slow, 0), stop)
        ahead = start > 0  # bars start + 1 .. stop - 1 all pass through the inner loop
        nlo = np.inf
        nhi = -np.inf
        mx = max(abs(lo), abs(hi))
        # every |d_j| of the block is at most hi - lo (at most |x_j| <= mx before bar n)
        sum_d = 1.001 * (stop - start) * ((hi - lo) if start >= slow else (hi - lo) + mx)
        af += sum_d
        as_ += sum_d
        kn = 1.001 * block_bars * mx
        e_f = 4.0 * _U * af + 2.0 * _U * ((fast - 1) * fast * mx + sum_d + kn * fast)
        e_s = 4.0 * _U * as_ + 2.0 * _U * ((slow - 1) * slow * mx + sum_d + kn * slow)
        bound = (e_f * rf + e_s * rs + 8.0 * _U * 2.002 * mx) * (1.0 + 2.0**-20)
        if start > 0:  # re-anchor (start >= block_bars > slow)
            pf = _anchor(close, start, fast)
            ps = _anchor(close, start, slow)
        else:
            pf = close[0]
            ps = close[0]
        i = start
        while True:  # bar i's sums are up to date: decide it
            d = pf * rf - ps * rs
            if not (d * rel > bound) and i >= slow - 1:  # not proven on the same side as the last bar
                if d > bound:
                    now = 1.0
                elif d < -bound:
                    now = -1.0
                else:
                    kahan_bars += i + 1 - kahan_at
                    kf, kcf, ks, kcs = _kahan_through(close, kahan_at, i, fast, slow, kf, kcf, ks, kcs)
                    kahan_at = i + 1
                    exact_f = kf / fast
                    exact_s = ks / slow
                    now = 1.0 if exact_f > exact_s else (-1.0 if exact_f < exact_s else 0.0)
                if i >= slow and ((rel == -1.0 and now == 1.0) or (rel == 1.0 and now == -1.0)):
                    if count == capacity:
                        return ev_bar, ev_val, -1, kahan_bars
                    ev_bar[count] = i
                    ev_val[count] = 1.0 if now == 1.0 else down_value
                    if record:
                        signals[i] = ev_val[count]
                    count += 1
                rel = now
            i += 1
            if i >= stop:
                break
            if i < slow:  # the warm-up: windows not yet full
                v = close[i]
                pf += v - (close[i - fast] if i >= fast else 0.0)
                ps += v - 0.0
                continue
            # the common bar: the same sums, proven on the same side as the last (unsigned indices: no
            # negative-index wraparound code in the loop)
            j = np.uint64(i)
            rfr = rf * rel  # exact: rel is +1, -1 or 0, and (a - b) * -1 == -a - -b
            rsr = rs * rel
            while True:
                v = close[j]
                pf += v - close[j - u_fast]
                ps += v - close[j - u_slow]
                jk = j + u_k
                w = close[jk if jk < u_last else u_last]
                nlo = w if w < nlo else nlo
                nhi = w if w > nhi else nhi
                dr = pf * rfr - ps * rsr
                if not (dr > bound):
                    if not (dr < -bound) or count == capacity:
                        break
                    # proven on the other side of the last bar (rel is +1 or -1): a crossover at bar j
                    val = 1.0 if rel < 0.0 else down_value
                    ev_bar[count] = np.int64(j)
                    ev_val[count] = val
                    if record:
                        signals[j] = val
                    count += 1
                    rel = -rel
                    rfr = -rfr
                    rsr = -rsr
                j += _U1
                if j >= u_stop:
                    break
            i = int(np.int64(j))
            if i >= stop:
                break
        start = stop
    return ev_bar, ev_val, count, kahan_bars


@njit(cache=True)
def sma_crossover_backtest(  # type: ignore[no-untyped-def]
    open_,
    close,
    ts_ns,
    fast,
    slow,
    down_value,
    cash,
    sizing,
    size,
    whole_units,
    c_pct,
    c_fixed,
    slippage,
    close_at_end,
    equity,
    signals,
):
    """The SMA crossover of ``close`` (``fast < slow`` bars; ``down_value`` -1 to reverse to short, 0 to go
    flat) simulated as `kernel._simulate_without_exits` simulates its signals, writing ``equity``.
    ``signals`` is empty, or one NaN per bar to receive the signal bars (as `sma_crossover_signal` writes
    them: the tests compare the two). Two tight loops: `crossover_events` lists the signal bars, then the
    simulation runs from event to event, tracking the equity path (`metrics.path_step`) as it goes.
    Between two executions the position is constant, so each bar is ``eq = cash + pos * (close - entry)``,
    its store, and two comparisons (``eq < top`` and ``eq >= lo``, ``lo`` the larger of the path's
    bound and the smallest positive double: a bar that passes both is neither ruin nor a `path_step`); the
    opens the signals execute at are gathered before the loop (independent loads, overlapped, where the
    loop would wait on a cache miss at every signal).

    Returns ``(ints, floats, n_trades, n_cancelled, warmup, path, kahan_bars)``: the trades' columns (see
    `_record`; their values are those of `engine.TradeTable.from_records` on `kernel.simulate`'s records), the warm-up
    `sma_crossover_signal` returns, what `metrics._equity_path` returns for ``equity``, and over how many
    bars the exact (Kahan) sums had to run to settle near ties (0 on most series)."""
    n = close.shape[0]
    warmup = max(fast - 1 if fast - 1 < n else n - 1, slow - 1 if slow - 1 < n else n - 1)
    # the event list: room for a signal on 2 bars in 3 (an ordinary series crosses far less often; even
    # fast 1, slow 2 on a random walk, about every other bar), else a second pass with room for all (a list
    # as long as the bars would be 8 bytes a bar of fresh memory, and its page faults)
    most = max(n - slow, 0) + 1
    room = min(most, 2 * n // 3 + 64)
    ev_bar, ev_val, n_ev, kahan_bars = crossover_events(close, fast, slow, down_value, signals, room)
    if n_ev < 0:
        ev_bar, ev_val, n_ev, kahan_bars = crossover_events(close, fast, slow, down_value, signals, most)
    # the trades as columns (a trade opens on a signal): `engine.TradeTable`'s, without a records table
    ints = np.empty((3, n_ev + 1), dtype=np.int64)
    floats = np.empty((6, n_ev + 1), dtype=np.float64)
    # the opens the signals execute at, gathered first: independent loads the CPU overlaps, where the
    # simulation would wait for each one (a cache miss every ~25 bars)
    ev_open = np.empty(n_ev, dtype=np.float64)
    for e in range(n_ev):
        ev_open[e] = open_[min(ev_bar[e] + 1, n - 1)]
    k = 0
    cancelled = 0
    pos = 0.0
    direction = 0.0
    entry_price = 0.0
    entry_bar = 0
    entry_comm = 0.0
    last = n - 1
    # equity path state, as in metrics._equity_path (top is set by bar 0)
    top = np.inf
    deepest = -np.inf
    q_min = np.inf
    bound_e = np.inf
    any_nan = False
    mark = -1
    long_bars = 0
    long_ns = ts_ns[0] - ts_ns[0]
    found = False
    ruined = -1
    u_n = np.uint64(n)
    lo = np.inf  # eq >= lo: eq > 0 and eq >= bound_e (NaN if bound_e is)
    i = 0
    e = 0
    while True:
        stop = ev_bar[e] + 1 if e < n_ev else n  # the bar the next signal executes at (n: none)
        # bars i .. stop - 1 hold the position; the tight loop runs while a bar changes nothing on the
        # equity path (eq < top, eq >= bound_e: `path_step` skipped) and is not ruin (eq > 0)
        u_end = np.uint64(min(stop, last))
        u = np.uint64(i)
        if pos == 0.0 and cash < top and cash >= lo:
            # flat, and cash changes nothing on the path: every bar's equity is cash (cash + 0.0 * (close -
            # entry) with finite prices, as `Bars` has them), and every bar is skipped. Filled 32 bars at a
            # time, running past u_end by up to 31 bars when it is 32 bars or more from the end (the next
            # segments write those bars again, in order): a loop whose trip count is mostly 1 or 2, where a
            # vectorised loop and its remainder loop both guessed their exits wrong on most segments
            # (~0.13 ms of ~1.6 at 1M bars, 19k flat segments)
            if u_end + _FILL <= u_n:
                while u < u_end:
                    for q in range(32):
                        equity[u + np.uint64(q)] = cash
                    u += _FILL
                u = u_end
            while u < u_end:
                equity[u] = cash
                u += _U1
        while u < u_end:
            eq = cash + pos * (close[u] - entry_price)
            equity[u] = eq
            if not (eq < top and eq >= lo):
                if eq <= 0.0:
                    ruined = int(np.int64(u))
                    break
                top, deepest, q_min, bound_e, any_nan, mark, long_bars, long_ns, found = path_step(
                    np.int64(u), eq, last, ts_ns, top, deepest, q_min, bound_e, any_nan, mark, long_bars, long_ns, found
                )
                lo = _MIN_POSITIVE if bound_e < _MIN_POSITIVE else bound_e
            u += _U1
        if ruined >= 0:
            break
        if stop >= n:
            break
        i = stop
        target = ev_val[e]
        if target != direction:
            if pos != 0.0:
                cash, px, comm = _close_fill(ev_open[e], pos, direction, entry_price, cash, c_pct, c_fixed, slippage)
                _record(ints, floats, k, entry_bar, i, entry_price, px, pos, entry_comm + comm, EXIT_SIGNAL, px)
                k += 1
                pos = 0.0
                direction = 0.0
            if target != 0.0:
                px, units, comm = _open_fill(
                    target, ev_open[e], cash, sizing, size, whole_units, c_pct, c_fixed, slippage
                )
                if units > 0.0:
                    pos = target * units
                    direction = target
                    entry_price = px
                    entry_bar = i
                    entry_comm = comm
                    cash -= entry_comm
                else:
                    cancelled += 1
        e += 1
    if ruined < 0:  # the last bar (no path step here: it is taken after the end-of-run fill below)
        eq = cash + pos * (close[last] - entry_price)
        if eq <= 0.0:
            ruined = last
        else:
            equity[last] = eq
    if ruined >= 0:
        i = ruined
        if pos != 0.0:
            v = close[i]
            comm = c_fixed + abs(pos) * v * c_pct
            _record(ints, floats, k, entry_bar, i, entry_price, v, pos, entry_comm + comm, EXIT_RUIN, v)
            k += 1
        equity[i:] = 0.0
        for t in range(i, n):
            if not (top > 0.0 and bound_e <= 0.0 and t < last):
                top, deepest, q_min, bound_e, any_nan, mark, long_bars, long_ns, found = path_step(
                    t, 0.0, last, ts_ns, top, deepest, q_min, bound_e, any_nan, mark, long_bars, long_ns, found
                )
        path = (top, np.nan if any_nan else deepest, long_bars, long_ns, found)
        return ints[:, :k], floats[:, :k], k, cancelled, warmup, path, kahan_bars
    if pos != 0.0:
        if close_at_end:
            px = close[last] * (1.0 - direction * slippage)
            comm = c_fixed + abs(pos) * px * c_pct
            cash += pos * (px - entry_price) - comm
            equity[last] = cash
            _record(ints, floats, k, entry_bar, last, entry_price, px, pos, entry_comm + comm, EXIT_END, px)
        else:
            _record(ints, floats, k, entry_bar, -1, entry_price, np.nan, pos, entry_comm, EXIT_OPEN, close[last])
        k += 1
    top, deepest, q_min, bound_e, any_nan, mark, long_bars, long_ns, found = path_step(
        last, equity[last], last, ts_ns, top, deepest, q_min, bound_e, any_nan, mark, long_bars, long_ns, found
    )
    path = (top, np.nan if any_nan else deepest, long_bars, long_ns, found)
    return ints[:, :k], floats[:, :k], k, cancelled, warmup, path, kahan_bars
