"""Backtest settings: money, sizing, costs and protective exits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from nt_mcp.domain.errors import DomainValueError


class Sizing(StrEnum):
    """How many units an entry buys or sells short.

    - ``fraction``: a fraction of current equity (``size`` in (0, 1]; 1.0 means all-in). With whole
      units this is backtesting.py's rule exactly:
      ``units = floor(equity * f / (price + (fixed + f * price * pct) / f))`` with
      ``f = min(size, 1 - 2**-52)``.
    - ``quantity``: ``size`` units; the order is cancelled if its cost plus commission exceeds cash.
    - ``cash``: spend at most ``min(size, equity)``: the largest ``units`` with
      ``units * price * (1 + pct) + fixed <= budget``.
    """

    FRACTION = "fraction"
    QUANTITY = "quantity"
    CASH = "cash"


SIZING_CODES = {Sizing.FRACTION: 0, Sizing.QUANTITY: 1, Sizing.CASH: 2}


def _check_fraction(name: str, value: float | None, upper: float = 1.0) -> None:
    if value is None:
        return
    if not math.isfinite(value) or not 0.0 < value < upper:
        raise DomainValueError(name, f"must be a fraction in (0, {upper}), got {value}")


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Everything about a backtest except the bars and the strategy.

    Costs: ``commission_pct`` is a fraction of traded value (0.001 = 0.1 %) and ``commission_fixed``
    a cash amount per order; both are charged on every fill, entry and exit (as backtesting.py does).
    ``slippage_bps`` moves every fill price against the trader: buys fill at
    ``price * (1 + bps / 10_000)``, sells at ``price * (1 - bps / 10_000)``.

    Protective exits are fractions of the entry fill price: ``stop_loss=0.05`` exits a long at
    ``entry * 0.95``; ``take_profit=0.1`` at ``entry * 1.10``; ``trailing_stop=0.05`` keeps a stop at
    5 % below the highest high seen since entry (lowest low for shorts).

    ``close_at_end=False`` (the default, like backtesting.py) leaves a position still open after
    the last bar marked at the last close and reported as an open trade; ``True`` closes it at the
    last close.
    """

    cash: float = 10_000.0
    sizing: Sizing = Sizing.FRACTION
    size: float = 1.0
    whole_units: bool = True
    commission_pct: float = 0.0
    commission_fixed: float = 0.0
    slippage_bps: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    close_at_end: bool = False
    risk_free_rate: float = 0.0

    @property
    def has_exits(self) -> bool:
        """Whether any protective exit (stop-loss, take-profit, trailing stop) is set."""
        return self.stop_loss is not None or self.take_profit is not None or self.trailing_stop is not None

    def kernel_args(self) -> tuple[float, int, float, bool, float, float, float, float, float, float, bool]:
        """The settings as the compiled kernel takes them, in its argument order (cash .. close_at_end):
        sizing as its code, slippage as a fraction, an unset protective exit as NaN."""

        def optional(value: float | None) -> float:
            return math.nan if value is None else float(value)

        return (
            float(self.cash),
            SIZING_CODES[self.sizing],
            float(self.size),
            bool(self.whole_units),
            float(self.commission_pct),
            float(self.commission_fixed),
            float(self.slippage_bps) / 1e4,
            optional(self.stop_loss),
            optional(self.take_profit),
            optional(self.trailing_stop),
            bool(self.close_at_end),
        )

    def __post_init__(self) -> None:
        if not math.isfinite(self.cash) or self.cash <= 0:
            raise DomainValueError("cash", f"must be a positive amount, got {self.cash}")
        sizing = Sizing(self.sizing)
        object.__setattr__(self, "sizing", sizing)
        if not math.isfinite(self.size) or self.size <= 0:
            raise DomainValueError("size", f"must be positive, got {self.size}")
        if sizing is Sizing.FRACTION and self.size > 1.0:
            raise DomainValueError("size", f"a fraction of equity must be in (0, 1], got {self.size}")
        if sizing is Sizing.QUANTITY and self.whole_units and self.size != math.floor(self.size):
            raise DomainValueError("size", f"must be a whole number of units, got {self.size}")
        if not math.isfinite(self.commission_pct) or not 0.0 <= self.commission_pct < 0.1:
            raise DomainValueError("commission_pct", f"must be in [0, 0.1), got {self.commission_pct}")
        if not math.isfinite(self.commission_fixed) or self.commission_fixed < 0:
            raise DomainValueError("commission_fixed", f"must be >= 0, got {self.commission_fixed}")
        if not math.isfinite(self.slippage_bps) or not 0.0 <= self.slippage_bps < 1000:
            raise DomainValueError("slippage_bps", f"must be in [0, 1000), got {self.slippage_bps}")
        _check_fraction("stop_loss", self.stop_loss)
        _check_fraction("take_profit", self.take_profit, upper=100.0)
        _check_fraction("trailing_stop", self.trailing_stop)
        if not math.isfinite(self.risk_free_rate) or not -1 < self.risk_free_rate < 1:
            raise DomainValueError("risk_free_rate", f"must be in (-1, 1), got {self.risk_free_rate}")
