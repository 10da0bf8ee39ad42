"""The backtesting engine: signals in, equity, trades and metrics out.

The engine and the metrics are compiled (numba); they are imported on first use of their names
(``nt_mcp.domain.backtest.run_backtest`` etc., PEP 562), so importing the package, or its numba-free
``config``, does not load numba: a server lists its tools without it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nt_mcp.domain.backtest.config import BacktestConfig, Sizing

if TYPE_CHECKING:
    from nt_mcp.domain.backtest.engine import BacktestResult, Trade, TradeTable, run_backtest
    from nt_mcp.domain.backtest.metrics import Metrics, compute_metrics

_LAZY = {
    "BacktestResult": "engine",
    "Trade": "engine",
    "TradeTable": "engine",
    "run_backtest": "engine",
    "Metrics": "metrics",
    "compute_metrics": "metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Metrics",
    "Sizing",
    "Trade",
    "TradeTable",
    "compute_metrics",
    "run_backtest",
]
