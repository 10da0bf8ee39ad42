"""The strategy registry: ``STRATEGIES[name]`` is a :class:`StrategySpec`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies import (
    breakout,
    mean_reversion,
    momentum,
    neural_forecast,
    rsi_reversion,
    sma_crossover,
)
from nt_mcp.domain.strategies.spec import Param, StrategySignals, StrategySpec

if TYPE_CHECKING:  # the engine (numba) loads on the first backtest, not with the registry
    from nt_mcp.domain.backtest.config import BacktestConfig
    from nt_mcp.domain.backtest.engine import BacktestResult

STRATEGIES: dict[str, StrategySpec] = {
    spec.name: spec
    for spec in (
        sma_crossover.SPEC,
        momentum.SPEC,
        mean_reversion.SPEC,
        breakout.SPEC,
        rsi_reversion.SPEC,
        neural_forecast.SPEC,
    )
}


def get_strategy(name: str) -> StrategySpec:
    """The registered strategy called ``name``."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = sorted(STRATEGIES)
        raise DomainValueError("strategy", f"unknown strategy {name!r}; known: {known}") from None


def run_strategy(
    bars: Bars, name: str, params: Mapping[str, Any] | None = None, config: BacktestConfig | None = None
) -> BacktestResult:
    """Validate ``params``, compute the strategy's signals and backtest them on ``bars``. A strategy with
    a fused pass (`StrategySpec.fused_backtest`) runs it when the config sets no protective exit."""
    from nt_mcp.domain.backtest.config import BacktestConfig
    from nt_mcp.domain.backtest.engine import run_backtest

    spec = get_strategy(name)
    cfg = config or BacktestConfig()
    if spec.fused_backtest is not None and not cfg.has_exits:
        return spec.fused_backtest(bars, spec.validate(params), cfg)
    out = spec.run(bars, params)
    return run_backtest(bars, out.signals, cfg, stop_distance=out.stop_distance, first_trading_bar=out.warmup)


__all__ = ["STRATEGIES", "Param", "StrategySignals", "StrategySpec", "get_strategy", "run_strategy"]
