"""What a strategy is: a named rule, its typed and bounded parameters, and a signal function."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError

if TYPE_CHECKING:
    from nt_mcp.domain.backtest import BacktestConfig, BacktestResult

FloatArray = npt.NDArray[np.float64]
Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its type (``int``, ``float`` or ``bool``), inclusive bounds and default."""

    name: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any) -> Any:
        """Check ``value`` against type and bounds; return it as ``self.type``."""
        if self.type is bool:
            if not isinstance(value, bool):
                raise DomainValueError(self.name, f"must be true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DomainValueError(self.name, f"must be a number, got {value!r}")
        if self.type is int:
            if not float(value).is_integer():
                raise DomainValueError(self.name, f"must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise DomainValueError(self.name, f"must be finite, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise DomainValueError(self.name, f"must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise DomainValueError(self.name, f"must be <= {self.maximum}, got {value}")
        return value


@dataclass(frozen=True, slots=True)
class StrategySignals:
    """A strategy's output for one run: the per-bar signal (see ``run_backtest``), an optional
    per-bar stop distance in price units, and the warm-up (first bar with defined indicators)."""

    signals: FloatArray
    warmup: int
    stop_distance: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A registered strategy. ``signals(bars, params)`` expects params already validated by
    :meth:`validate`; ``check`` enforces rules between parameters (e.g. ``fast < slow``)."""

    name: str
    description: str
    params: tuple[Param, ...]
    compute: Callable[[Bars, Params], StrategySignals]
    check: Callable[[Params], None] = field(default=lambda _p: None)
    max_combinations: int | None = None  # a cap on optimisation grids (strategies that fit a model per run)
    # Signals and simulation in one compiled pass, for a config without protective exits: the same result
    # as ``run_backtest`` on ``compute``'s output, bit for bit (validated params, as ``compute``).
    fused_backtest: Callable[[Bars, Params, BacktestConfig], BacktestResult] | None = None

    def validate(self, params: Mapping[str, Any] | None = None) -> Params:
        """Defaults filled in, unknown names rejected, each value type- and bound-checked."""
        given = dict(params or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            raise DomainValueError(unknown[0], f"is not a parameter of {self.name}; expected one of {sorted(known)}")
        out = {p.name: p.coerce(given.get(p.name, p.default)) for p in self.params}
        self.check(out)
        return out

    def signals(self, bars: Bars, params: Mapping[str, Any] | None = None) -> FloatArray:
        """The per-bar signal array for ``bars`` (validates ``params`` first)."""
        return self.run(bars, params).signals

    def run(self, bars: Bars, params: Mapping[str, Any] | None = None) -> StrategySignals:
        """Signals plus stop distance and warm-up (validates ``params`` first)."""
        return self.compute(bars, self.validate(params))

    def describe(self) -> dict[str, Any]:
        """A plain description: name, rule in words, parameters with type, bounds, default."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [
                {
                    "name": p.name,
                    "type": p.type.__name__,
                    "default": p.default,
                    "minimum": p.minimum,
                    "maximum": p.maximum,
                    "description": p.description,
                }
                for p in self.params
            ],
        }


def warmup_of(*indicators: FloatArray) -> int:
    """First bar at which every indicator is defined (backtesting.py's warm-up rule)."""
    first = 0
    for ind in indicators:
        defined = ~np.isnan(ind)
        first = max(first, int(np.argmax(defined)) if defined.any() else ind.shape[0] - 1)
    return first
