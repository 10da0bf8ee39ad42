"""Compile the backtest kernels in a background thread from the first moment of `nt-mcp serve`.

The thread imports numba and the domain itself, so the main thread meanwhile imports the MCP SDK,
SQLAlchemy and the rest and answers the handshake: numba's LLVM work runs in C with the GIL released, on
the other core. Until the kernels are ready, small kernel calls run their pure-Python twins
(`nt_mcp.domain.jit`), so the first answers after an install do not wait for the compiler. This module
imports nothing heavy, so callers can start the warm-up before their own imports.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _warm_up() -> None:
    from nt_mcp.domain import jit
    from nt_mcp.domain.backtest.warmup import compile_kernels

    try:
        seconds = jit.warm_up(compile_kernels)
    except Exception:
        log.exception("backtest kernel warm-up failed")
        return
    if seconds is not None:
        log.info("backtest kernels ready", extra={"seconds": round(seconds, 3)})


def start_kernel_warm_up() -> None:
    """Start the warm-up thread (once per process; later calls do nothing)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, name="nt-mcp-kernel-warm-up", daemon=True)
            _thread.start()
