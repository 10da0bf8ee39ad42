"""Compiled kernels that answer before they are compiled.

numba compiles an ``@njit`` kernel on its first call: seconds on a fresh install, ~1 s to load them all
from the on-disk cache otherwise. A server warms its kernels in a background thread once it is in use
(`warm_up`, started by `nt_mcp.server.kernel_warmup`). Meanwhile ``compiled(kernel)(*args)``
decides per call:

- the kernel already has a compiled signature, or no warm-up is running: the compiled kernel
  (numba compiles it now if it must, as it always did);
- a warm-up is running and the call is small (its largest array argument holds at most
  `PYTHON_TWIN_MAX_ELEMENTS` elements): the kernel's pure-Python twin, `python_twin(kernel)`, runs at once;
- a larger call waits for the compiler (numba's compile lock) and runs compiled.

The twin is the dispatcher's own Python function (``dispatcher.py_func``): the same code, executing
the same IEEE 754 double operations in the same order, so it gives the same numbers (the tests
compare both paths bit for bit). Kernels it calls, by global name or as ``module.kernel``, are
replaced by their own twins, so no compilation hides inside a twin.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from numba.core.dispatcher import Dispatcher

# Measured: the bar loop runs ~4 us a bar in Python, the SMA sweep ~10 us per (pair, bar) of its equity
# matrix; compiling every kernel takes 3-6 s. So a call up to this size answers sooner in Python.
PYTHON_TWIN_MAX_ELEMENTS = 250_000

_twins: dict[Dispatcher[Any], Callable[..., Any]] = {}
_kernels: dict[Dispatcher[Any], Kernel] = {}
_warming = threading.Event()  # set while a warm-up runs
_warm_thread = threading.local()  # .active: this thread is the warm-up (always compiled)
_lock = threading.RLock()
_started = False


class _TwinModule:
    """A module seen from a twin: its kernels are twins, everything else is the module's own."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        return python_twin(value) if isinstance(value, Dispatcher) else value


def python_twin(kernel: Dispatcher[Any]) -> Callable[..., Any]:
    """``kernel``'s pure-Python function, with the kernels it calls replaced by their twins."""
    with _lock:  # re-entrant: building one twin builds the twins of the kernels it calls
        twin = _twins.get(kernel)
        if twin is not None:
            return twin
        function = kernel.py_func
        namespace = function.__globals__.copy()  # one C-level copy: another thread may be importing into it
        cells = tuple(types.CellType() for _ in function.__closure__ or ())
        twin = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__, cells or None)
        _twins[kernel] = twin  # before filling it in: kernels may call each other
        for name, value in list(namespace.items()):
            namespace[name] = _twin_of(value)
        for cell, original in zip(cells, function.__closure__ or (), strict=True):
            cell.cell_contents = _twin_of(original.cell_contents)
        return twin


def _twin_of(value: Any) -> Any:
    """``value`` as a twin sees it: a kernel becomes its twin, a module holding kernels a view of them."""
    if isinstance(value, Dispatcher):
        return python_twin(value)
    # A snapshot of the module's namespace: iterating it live fails ("dictionary changed size during
    # iteration") while another thread imports a submodule into it, as the warm-up thread does.
    if isinstance(value, types.ModuleType) and any(isinstance(v, Dispatcher) for v in list(vars(value).values())):
        return _TwinModule(value)
    return value


def _elements(args: tuple[Any, ...]) -> int:
    """The size of the largest array argument: the work of a bar loop grows with it."""
    return max((a.size for a in args if isinstance(a, np.ndarray)), default=0)


class Kernel:
    """A compiled kernel called from Python: compiled code when ready, its twin while warming."""

    def __init__(self, dispatcher: Dispatcher[Any]) -> None:
        self.dispatcher = dispatcher

    def __call__(self, *args: Any) -> Any:
        if (
            not _warming.is_set()  # first: the common case, and cheaper than listing the signatures
            or self.dispatcher.signatures
            or getattr(_warm_thread, "active", False)
            or _elements(args) > PYTHON_TWIN_MAX_ELEMENTS
        ):
            return self.dispatcher(*args)
        return python_twin(self.dispatcher)(*args)


def compiled(dispatcher: Dispatcher[Any]) -> Kernel:
    """The Python-side entry to an ``@njit`` kernel (one `Kernel` per dispatcher)."""
    with _lock:
        return _kernels.setdefault(dispatcher, Kernel(dispatcher))


def is_warming() -> bool:
    """True while a background warm-up is compiling (small calls run their Python twins)."""
    return _warming.is_set()


def warm_up(warm: Callable[[], None]) -> float | None:
    """Run ``warm`` (calls that compile every kernel) in this thread, always on the compiled path; small
    kernel calls from other threads use their twins until it returns. Once per process: the seconds it
    took, or None when a warm-up already ran or runs. An exception from ``warm`` propagates (a kernel
    that cannot compile then fails, and says why, on its first real call)."""
    global _started
    with _lock:
        if _started:
            return None
        _started = True
        _warming.set()
    started = time.perf_counter()
    _warm_thread.active = True
    try:
        warm()
    finally:
        _warm_thread.active = False
        _warming.clear()
    return time.perf_counter() - started
