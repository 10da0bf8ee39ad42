"""The backtesting engine: signals in, equity, trades and metrics out."""

from nt_mcp.domain.backtest.config import BacktestConfig, Sizing
from nt_mcp.domain.backtest.engine import BacktestResult, Trade, TradeTable, run_backtest
from nt_mcp.domain.backtest.metrics import Metrics, compute_metrics

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
