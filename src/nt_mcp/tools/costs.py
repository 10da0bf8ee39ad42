"""Rate-limit costs of the data-heavy tools: what one call spends of ``NT_RATE_LIMIT_PER_MINUTE``.

A tool's cost is an int, or a function of the call's (validated) arguments declared with
``@tool(cost=...)``; the guard caps it at the per-minute budget, so any single call can run. Costs
grow with the bars a call touches, estimated from its arguments before it runs:

- get_bars: ``1 + limit // 1000`` (10,000 bars cost 11);
- run_backtest: ``2 + bars // 500,000`` (the 5,000,000-bar maximum costs 12);
- optimize_strategy: ``5 + combinations x bars // 100,000,000`` (see `tools.optimization`).

Bars are estimated on the weekday grid of the synthetic source, ``(end - start) / timeframe x 5/7``,
with the tools' defaults (end: now; start: a year before end); a files source is counted the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

TIMEFRAME_SECONDS = {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3_600, "1Day": 86_400}


def estimated_bars(timeframe: str, start: datetime, end: datetime) -> int:
    """Bars between ``start`` and ``end`` at ``timeframe`` on a weekday grid (an upper bound for markets)."""
    seconds = max(0.0, (end - start).total_seconds())
    return int(seconds / TIMEFRAME_SECONDS.get(timeframe, 86_400) * 5 / 7) + 1


def bars_in_range(arguments: Mapping[str, Any]) -> int:
    """`estimated_bars` of a call's ``start``/``end``/``timeframe`` with the backtest tools' defaults."""
    end = arguments.get("end")
    end = end if isinstance(end, datetime) else datetime.now(UTC)
    start = arguments.get("start")
    start = start if isinstance(start, datetime) else end - timedelta(days=365)
    timeframe = arguments.get("timeframe")
    return estimated_bars(timeframe if isinstance(timeframe, str) else "1Day", start, end)


def get_bars_cost(arguments: Mapping[str, Any]) -> int:
    limit = arguments.get("limit")
    return 1 + (limit if isinstance(limit, int) else 100) // 1000


def backtest_cost(arguments: Mapping[str, Any]) -> int:
    return 2 + bars_in_range(arguments) // 500_000
