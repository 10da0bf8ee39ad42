"""The kernels' pure-Python twins (what answers while numba compiles) give the same numbers as the
compiled kernels, bit for bit, and `compiled(kernel)` picks the twin only for small calls during a
warm-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numba import njit

from nt_mcp.domain import jit
from nt_mcp.domain.backtest import BacktestConfig, BacktestResult
from nt_mcp.domain.backtest.sweep import SweepResult, sweep_sma_crossover
from nt_mcp.domain.backtest.warmup import compile_kernels, warm_up_bars
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import STRATEGIES, run_strategy
from tests.unit.test_backtest_parity import goog_bars

CONFIGS = {
    "all-in": BacktestConfig(),
    "costs-and-exits": BacktestConfig(
        commission_pct=0.001, commission_fixed=1.0, slippage_bps=5, stop_loss=0.04, take_profit=0.08, trailing_stop=0.05
    ),
    "fixed-cash-close-at-end": BacktestConfig(sizing="cash", size=2_500.0, close_at_end=True),
}


def _twins_only(patch: pytest.MonkeyPatch) -> None:
    """From now on every `compiled(kernel)(...)` call runs the kernel's Python twin."""
    patch.setattr(jit.Kernel, "__call__", lambda self, *args: jit.python_twin(self.dispatcher)(*args))


def _same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def _assert_identical(compiled_run: BacktestResult, twin_run: BacktestResult) -> None:
    assert _same(compiled_run.equity, twin_run.equity)
    for column in ("entry_bar", "exit_bar", "entry_price", "exit_price", "size", "commission", "pnl", "exit_reason"):
        assert _same(getattr(compiled_run.trades, column), getattr(twin_run.trades, column)), column
    assert compiled_run.cancelled_orders == twin_run.cancelled_orders
    assert compiled_run.metrics.as_dict().keys() == twin_run.metrics.as_dict().keys()
    for key, value in compiled_run.metrics.as_dict().items():
        assert _same(value, twin_run.metrics.as_dict()[key]), key


def _bars() -> dict[str, Bars]:
    return {"goog": goog_bars(), "random-walk": warm_up_bars(1_500)}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_strategy_gives_the_same_numbers_on_both_paths(
    strategy: str, config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, bars in _bars().items():
        params = STRATEGIES[strategy].validate({})
        if "allow_short" in params:
            params["allow_short"] = True
        compiled_run = run_strategy(bars, strategy, params, CONFIGS[config])
        with monkeypatch.context() as patch:
            _twins_only(patch)
            twin_run = run_strategy(bars, strategy, params, CONFIGS[config])
        assert len(compiled_run.trades) > 0, f"{strategy} on {name} made no trade: a weak comparison"
        _assert_identical(compiled_run, twin_run)


def _sweep_rows(result: SweepResult) -> list[dict[str, float | int]]:
    return result.table()


def test_the_sma_sweep_gives_the_same_numbers_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = goog_bars()
    config = CONFIGS["costs-and-exits"]
    compiled_rows = _sweep_rows(sweep_sma_crossover(bars, [5, 10, 20], [30, 50, 100], config, allow_short=True))
    _twins_only(monkeypatch)
    twin_rows = _sweep_rows(sweep_sma_crossover(bars, [5, 10, 20], [30, 50, 100], config, allow_short=True))
    assert len(compiled_rows) == len(twin_rows) == 9
    for ours, theirs in zip(compiled_rows, twin_rows, strict=True):
        assert ours.keys() == theirs.keys()
        assert all(_same(ours[k], theirs[k]) for k in ours), (ours, theirs)


def test_a_twin_runs_no_compiled_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin of a kernel that calls other kernels (by name and as module.kernel) compiles nothing."""

    @njit(cache=False)
    def inner(x):  # type: ignore[no-untyped-def]
        return x * 2.0

    @njit(cache=False)
    def outer(a):  # type: ignore[no-untyped-def]
        total = 0.0
        for v in a:
            total += inner(v)
        return total

    values = np.arange(10.0)
    assert jit.python_twin(outer)(values) == 90.0
    assert inner.signatures == [] and outer.signatures == []
    assert jit.python_twin(outer) is jit.python_twin(outer)  # built once


def test_compiled_picks_the_twin_only_for_small_calls_while_warming(monkeypatch: pytest.MonkeyPatch) -> None:
    @njit(cache=False)
    def total(a):  # type: ignore[no-untyped-def]
        s = 0.0
        for v in a:
            s += v
        return s

    kernel = jit.compiled(total)
    assert jit.compiled(total) is kernel
    small = np.ones(10)
    monkeypatch.setattr(jit, "_warming", _Flag(True))
    assert kernel(small) == 10.0 and total.signatures == []  # the twin answered: nothing compiled
    big = np.ones(jit.PYTHON_TWIN_MAX_ELEMENTS + 1)
    assert kernel(big) == big.size and len(total.signatures) == 1  # too big for Python: compiled
    monkeypatch.setattr(jit, "_warming", _Flag(False))

    @njit(cache=False)
    def again(a):  # type: ignore[no-untyped-def]
        return a.sum()

    assert jit.compiled(again)(small) == 10.0 and len(again.signatures) == 1  # no warm-up running: compiled


def test_the_warm_up_compiles_what_the_tools_call() -> None:
    """After compile_kernels, a backtest of every strategy and a sweep need no new compilation."""
    from nt_mcp.domain.backtest import fused_sma, kernel, metrics, sweep, trade_figures
    from nt_mcp.domain.strategies import indicators

    compile_kernels()
    dispatchers = [
        kernel.simulate,
        fused_sma.sma_crossover_backtest,
        sweep._sweep,
        indicators._rolling_mean_std,
        indicators.wilder_mean,
        indicators.rolling_max_min,
        indicators.sma_crossover_signal,
        metrics._day_period_ends,
        metrics._equity_path,
        metrics._period_returns,
        trade_figures.trade_columns,
        trade_figures.trade_figures,
    ]
    before = {d: len(d.signatures) for d in dispatchers}
    assert all(before.values())
    bars = goog_bars().slice(0, 1500)  # a training split, as optimize_strategy makes one
    for name, spec in STRATEGIES.items():
        run_strategy(bars, name, spec.validate({}), CONFIGS["costs-and-exits"])
        run_strategy(bars, name, spec.validate({}), CONFIGS["all-in"])
    sweep_sma_crossover(bars, [5, 10], [30, 60])
    assert {d: len(d.signatures) for d in dispatchers} == before


class _Flag:
    def __init__(self, value: bool) -> None:
        self.value = value

    def is_set(self) -> bool:
        return self.value


def test_warm_up_runs_once_and_twins_answer_other_threads_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    @njit(cache=False)
    def double(a):  # type: ignore[no-untyped-def]
        return a * 2.0

    monkeypatch.setattr(jit, "_started", False)
    monkeypatch.setattr(jit, "_warming", threading.Event())
    seen: dict[str, object] = {}

    def warm() -> None:
        assert jit.is_warming()
        worker = threading.Thread(target=lambda: seen.update(other=jit.compiled(double)(np.ones(3))))
        worker.start()
        worker.join()
        seen["compiled_before"] = list(double.signatures)  # the other thread's call compiled nothing
        seen["mine"] = jit.compiled(double)(np.ones(3))  # the warm-up's own calls compile

    seconds = jit.warm_up(warm)
    assert seconds is not None and seconds >= 0 and not jit.is_warming()
    assert seen["compiled_before"] == [] and len(double.signatures) == 1
    assert list(seen["other"]) == list(seen["mine"]) == [2.0, 2.0, 2.0]  # type: ignore[call-overload]
    assert jit.warm_up(warm) is None  # once per process


def test_a_twin_is_built_while_another_thread_imports_into_a_module_it_sees() -> None:
    """CI once answered INTERNAL ("dictionary changed size during iteration"): a twin was being built
    while the warm-up thread imported a submodule into a module the kernel refers to."""
    import sys
    import threading
    import types

    module = types.ModuleType("nt_twin_race")
    for i in range(2_000):
        setattr(module, f"value_{i}", i)

    @njit(cache=False)
    def kernel_in_module(x):  # type: ignore[no-untyped-def]
        return x + 1.0

    module.kernel_in_module = kernel_in_module  # last: the scan for kernels walks the whole namespace
    stop = threading.Event()

    def import_into_it() -> None:
        n = 0
        while not stop.is_set():
            setattr(module, f"sub_{n}", n)
            delattr(module, f"sub_{n}")
            n += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=import_into_it)
    thread.start()
    try:
        for _ in range(300):
            assert isinstance(jit._twin_of(module), jit._TwinModule)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
