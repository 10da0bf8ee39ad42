"""The compiled bar loop. One function simulates one strategy on one series of bars.

Conventions (the docstring of :func:`simulate` is the reference):

- ``signal[i]`` is decided at bar ``i``'s close: +1 long, -1 short, 0 flat, NaN "no change".
  A signal that differs from the current direction is executed at the OPEN of bar ``i + 1``:
  the open position (if any) is closed, then a new one is opened in the target direction.
  A signal on the last bar is never executed (there is no next open).
- Protective exits (stop-loss, take-profit, trailing stop, per-trade stop distance) are checked
  against each bar's low and high from the entry bar on. If the open is already beyond a level
  (a gap), the exit fills at the open. If the stop and the take-profit are both inside one bar,
  the stop is assumed to fill first (pessimistic, as backtesting.py does).
- The trailing level used on a bar comes from the best price seen up to the previous bar
  (the entry price on the entry bar), so no intrabar ordering is assumed.
- Cash follows backtesting.py's bookkeeping: ``cash`` holds realised money only; the position is
  carried at its entry price, so ``equity = cash + size * (close - entry_price)``.
- If equity at a close is <= 0, the position is closed at that close and the run stops with
  equity 0 for the remaining bars (ruin).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Trade record columns.
T_ENTRY_BAR, T_EXIT_BAR, T_ENTRY_PRICE, T_EXIT_PRICE, T_SIZE, T_COMMISSION, T_REASON = range(7)
N_TRADE_COLS = 7

# Exit reasons.
EXIT_OPEN, EXIT_SIGNAL, EXIT_STOP_LOSS, EXIT_TAKE_PROFIT, EXIT_TRAILING, EXIT_END, EXIT_RUIN = range(7)
EXIT_REASONS = ("open", "signal", "stop_loss", "take_profit", "trailing_stop", "end", "ruin")

_ALL_IN = 1.0 - 2.0**-52


@njit(cache=True, inline="always")  # inlined in numba IR: the bar loops ran 5-15 % faster (interleaved A/B)
def _write(trades, k, entry_bar, exit_bar, entry_price, exit_price, size, commission, reason):  # type: ignore[no-untyped-def]
    trades[k, 0] = entry_bar
    trades[k, 1] = exit_bar
    trades[k, 2] = entry_price
    trades[k, 3] = exit_price
    trades[k, 4] = size
    trades[k, 5] = commission
    trades[k, 6] = reason


@njit(cache=True, inline="always")
def _floor_div(a, b):  # type: ignore[no-untyped-def]
    """``a // b`` (Python's float floor division, bit for bit) without its ``fmod`` call in the common
    case ``a >= 0``, ``b > 0``, ``q = fl(a / b) < 2**49`` with ``q`` not within ``q * 2**-50`` of an
    integer. Proof: ``a // b`` computes ``mod = fmod(a, b) = a - k b`` exactly (``k = floor(a / b)``, the
    exact quotient's floor), then ``div = fl(fl(a - mod) / b)`` (``= 0`` and the result ``+0.0`` when
    ``k = 0``), within ``k * 2.0001 * 2**-53 < 0.5`` of ``k``, and snaps it to the nearest integer: ``k``.
    ``q`` is within ``q * 2**-53`` of the exact quotient, so with no integer that close to ``q``,
    ``floor(q) = k`` (``q - floor(q)`` is exact; ``+0.0`` when ``k = 0``). Otherwise ``a // b`` itself."""
    if a >= 0.0 and b > 0.0:
        q = a / b
        if q < 562949953421312.0:  # 2**49
            k = np.floor(q)
            frac = q - k
            margin = q * 8.881784197001252e-16  # q * 2**-50
            if frac > margin and 1.0 - frac > margin:
                return k
    return a // b


@njit(cache=True, inline="always")
def _entry_units(cash, px, sizing, size, whole_units, c_pct, c_fixed):  # type: ignore[no-untyped-def]
    """Units an entry at fill price ``px`` buys (or sells short) with ``cash``; see `config.Sizing`."""
    units = 0.0
    if sizing == 0:
        if whole_units:
            f = min(size, _ALL_IN)
            units = _floor_div(cash * f, px + (c_fixed + f * px * c_pct) / f)
        else:
            units = (cash * size - c_fixed) / (px * (1.0 + c_pct))
    elif sizing == 1:
        units = size
        if units * px * (1.0 + c_pct) + c_fixed > cash:
            units = 0.0
    else:
        units = (min(size, cash) - c_fixed) / (px * (1.0 + c_pct))
        if whole_units:
            units = np.floor(units)
    return units


@njit(cache=True, inline="always")
def _close_fill(open_px, pos, direction, entry_price, cash, c_pct, c_fixed, slippage):  # type: ignore[no-untyped-def]
    """The position ``pos`` (sign ``direction``, entered at ``entry_price``) closed on a signal at the open
    ``open_px``: its fill ``px = open_px * (1 - direction * slippage)``, commission ``comm = c_fixed + |pos| *
    px * c_pct``, and the cash after it, ``cash + (pos * (px - entry_price) - comm)``. Returns ``(cash, px,
    comm)``. Both simulations (`_simulate_without_exits`, `fused_sma.sma_crossover_backtest`) execute their
    signals with it and `_open_fill`, each writing the trade in its own table (one helper returning the whole
    new position, tried first, made `_simulate_without_exits` ~10 % slower)."""
    px = open_px * (1.0 - direction * slippage)
    comm = c_fixed + abs(pos) * px * c_pct
    return cash + (pos * (px - entry_price) - comm), px, comm


@njit(cache=True, inline="always")
def _open_fill(target, open_px, cash, sizing, size, whole_units, c_pct, c_fixed, slippage):  # type: ignore[no-untyped-def]
    """An entry in direction ``target`` (+1 or -1) on a signal at the open ``open_px``: its fill ``px = open_px
    * (1 + target * slippage)``, the units `_entry_units` buys with ``cash`` (the order is cancelled unless
    positive) and their commission ``c_fixed + units * px * c_pct``. Returns ``(px, units, commission)``."""
    px = open_px * (1.0 + target * slippage)
    units = _entry_units(cash, px, sizing, size, whole_units, c_pct, c_fixed)
    return px, units, c_fixed + units * px * c_pct


@njit(cache=True)
def _simulate_without_exits(  # type: ignore[no-untyped-def]
    open_, close, signal, cash, sizing, size, whole_units, c_pct, c_fixed, slippage, close_at_end, equity
):
    """`simulate` when no protective exit is set: the same fills, costs, ruin and end rules in the
    same floating-point operations (so the same numbers), without the per-bar exit checks (no high or
    low is read) and with the direction kept instead of recomputed from the position every bar.

    (Growing the trade table by doubling instead of the first pass of `max_trades` was tried: a
    table reassigned inside the loop costs reference counting on every bar, 3x slower in all.)"""
    n = close.shape[0]
    capacity, bad = max_trades(signal, False)
    trades = np.empty((capacity, N_TRADE_COLS), dtype=np.float64)
    if bad >= 0:
        return trades, 0, 0, bad
    k = 0
    cancelled = 0
    pos = 0.0
    direction = 0.0
    entry_price = 0.0
    entry_bar = 0
    entry_comm = 0.0
    for i in range(n):
        if i > 0:
            target = signal[i - 1]
            if target != direction and not np.isnan(target):
                if pos != 0.0:
                    cash, px, comm = _close_fill(open_[i], pos, direction, entry_price, cash, c_pct, c_fixed, slippage)
                    _write(trades, k, entry_bar, i, entry_price, px, pos, entry_comm + comm, EXIT_SIGNAL)
                    k += 1
                    pos = 0.0
                    direction = 0.0
                if target != 0.0:
                    px, units, comm = _open_fill(
                        target, open_[i], cash, sizing, size, whole_units, c_pct, c_fixed, slippage
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
        eq = cash + pos * (close[i] - entry_price)
        if eq <= 0.0:
            if pos != 0.0:
                px = close[i]
                comm = c_fixed + abs(pos) * px * c_pct
                _write(trades, k, entry_bar, i, entry_price, px, pos, entry_comm + comm, EXIT_RUIN)
                k += 1
            equity[i:] = 0.0
            return trades[:k], k, cancelled, -1
        equity[i] = eq
    if pos != 0.0:
        last = n - 1
        if close_at_end:
            px = close[last] * (1.0 - direction * slippage)
            comm = c_fixed + abs(pos) * px * c_pct
            cash += pos * (px - entry_price) - comm
            equity[last] = cash
            _write(trades, k, entry_bar, last, entry_price, px, pos, entry_comm + comm, EXIT_END)
        else:
            _write(trades, k, entry_bar, -1, entry_price, np.nan, pos, entry_comm, EXIT_OPEN)
        k += 1
    return trades[:k], k, cancelled, -1


@njit(cache=True)
def max_trades(signal, has_stops):  # type: ignore[no-untyped-def]
    """An upper bound on the number of trades, and the first invalid signal bar (or -1).

    Every trade starts with an executed signal. Without protective exits a position only changes
    on a signal, so each run of equal non-NaN signals opens at most one trade; with them, a stopped
    trade can be re-entered by the next repeated signal, so the bound is the non-NaN count.
    """
    count = 0
    prev = 0.0
    for i in range(signal.shape[0]):
        s = signal[i]
        if np.isnan(s):
            continue
        if s != 1.0 and s != 0.0 and s != -1.0:
            return 0, i
        if has_stops or s != prev:
            count += 1
        prev = s
    return count + 1, -1


@njit(cache=True)
def simulate(  # type: ignore[no-untyped-def]
    open_,
    high,
    low,
    close,
    signal,
    stop_dist,
    cash,
    sizing,
    size,
    whole_units,
    c_pct,
    c_fixed,
    slippage,
    stop_loss,
    take_profit,
    trailing,
    close_at_end,
    equity,
):
    """Run the bar loop; write equity at every close into ``equity``.

    ``stop_dist`` is empty or a per-bar absolute stop distance taken from the signal bar.
    ``stop_loss``, ``take_profit``, ``trailing`` are fractions or NaN (off). ``sizing``:
    0 fraction of equity, 1 fixed quantity, 2 fixed cash. ``slippage`` is a fraction (bps / 1e4).

    Returns ``(trades, n_trades, n_cancelled, bad_signal_bar)``; ``bad_signal_bar`` is -1 or the
    first bar whose signal is not one of -1, 0, +1, NaN (then nothing else is valid).
    """
    n = close.shape[0]
    use_sl = not np.isnan(stop_loss)
    use_tp = not np.isnan(take_profit)
    use_trail = not np.isnan(trailing)
    has_dist = stop_dist.shape[0] == n
    if not (use_sl or use_tp or use_trail or has_dist):
        return _simulate_without_exits(
            open_, close, signal, cash, sizing, size, whole_units, c_pct, c_fixed, slippage, close_at_end, equity
        )
    capacity, bad = max_trades(signal, use_sl or use_tp or use_trail or has_dist)
    trades = np.empty((capacity, 7), dtype=np.float64)
    if bad >= 0:
        return trades, 0, 0, bad
    k = 0
    cancelled = 0

    pos = 0.0
    entry_price = 0.0
    entry_bar = 0
    entry_comm = 0.0
    sl_level = 0.0
    tp_level = 0.0
    best = 0.0

    for i in range(n):
        # 1. Execute the previous bar's signal at this bar's open.
        if i > 0:
            target = signal[i - 1]
            direction = 1.0 if pos > 0 else (-1.0 if pos < 0 else 0.0)
            if not np.isnan(target) and target != direction:
                if pos != 0.0:
                    px = open_[i] * (1.0 - direction * slippage)
                    comm = c_fixed + abs(pos) * px * c_pct
                    cash += pos * (px - entry_price) - comm
                    _write(trades, k, entry_bar, i, entry_price, px, pos, entry_comm + comm, EXIT_SIGNAL)
                    k += 1
                    pos = 0.0
                if target != 0.0:
                    px = open_[i] * (1.0 + target * slippage)
                    units = _entry_units(cash, px, sizing, size, whole_units, c_pct, c_fixed)
                    if units > 0.0:
                        pos = target * units
                        entry_price = px
                        entry_bar = i
                        entry_comm = c_fixed + units * px * c_pct
                        cash -= entry_comm
                        best = px
                        sl_level = np.nan
                        if use_sl:
                            sl_level = px * (1.0 - target * stop_loss)
                        if has_dist and not np.isnan(stop_dist[i - 1]):
                            lvl = px - target * stop_dist[i - 1]
                            if np.isnan(sl_level) or target * (lvl - sl_level) > 0:
                                sl_level = lvl
                        tp_level = px * (1.0 + target * take_profit) if use_tp else np.nan
                    else:
                        cancelled += 1
        # 2. Protective exits inside this bar.
        if pos != 0.0:
            d = 1.0 if pos > 0 else -1.0
            stop = sl_level
            reason = EXIT_STOP_LOSS
            if use_trail:
                trail_level = best * (1.0 - d * trailing)
                if np.isnan(stop) or d * (trail_level - stop) > 0:
                    stop = trail_level
                    reason = EXIT_TRAILING
            fill = np.nan
            if not np.isnan(stop):
                if d * (open_[i] - stop) <= 0:
                    fill = open_[i]
                elif (low[i] <= stop) if d > 0 else (high[i] >= stop):
                    fill = stop
            if np.isnan(fill) and use_tp:
                reason = EXIT_TAKE_PROFIT
                if d * (open_[i] - tp_level) >= 0:
                    fill = open_[i]
                elif (high[i] >= tp_level) if d > 0 else (low[i] <= tp_level):
                    fill = tp_level
            if not np.isnan(fill):
                px = fill * (1.0 - d * slippage)
                comm = c_fixed + abs(pos) * px * c_pct
                cash += pos * (px - entry_price) - comm
                _write(trades, k, entry_bar, i, entry_price, px, pos, entry_comm + comm, reason)
                k += 1
                pos = 0.0
            elif d > 0:
                best = max(best, high[i])
            else:
                best = min(best, low[i])
        # 3. Mark to the close.
        eq = cash + pos * (close[i] - entry_price)
        if eq <= 0.0:
            if pos != 0.0:
                px = close[i]
                comm = c_fixed + abs(pos) * px * c_pct
                _write(trades, k, entry_bar, i, entry_price, px, pos, entry_comm + comm, EXIT_RUIN)
                k += 1
                pos = 0.0
            equity[i:] = 0.0
            return trades[:k], k, cancelled, -1
        equity[i] = eq

    if pos != 0.0:
        last = n - 1
        if close_at_end:
            px = close[last] * (1.0 - (1.0 if pos > 0 else -1.0) * slippage)
            comm = c_fixed + abs(pos) * px * c_pct
            cash += pos * (px - entry_price) - comm
            equity[last] = cash
            _write(trades, k, entry_bar, last, entry_price, px, pos, entry_comm + comm, EXIT_END)
        else:
            _write(trades, k, entry_bar, -1, entry_price, np.nan, pos, entry_comm, EXIT_OPEN)
        k += 1
    return trades[:k], k, cancelled, -1
