"""Compile the backtest kernels in a background thread once the server is in use.

Over stdio it starts when the handshake is over (`NtMCPServer.start_when_used`: 0.25 s after the first
tools/list, or before the first tool call); over HTTP as the server starts. Started before the imports,
it slowed the imports, the handshake and the first answers alike (`benchmarks/bench_cold_start.py`:
handshake 2.2 s instead of 1.5 s); started beside the handshake, it slowed the handshake
(`benchmarks/bench_handshake.py`). Until the kernels are ready, small kernel calls run their
pure-Python twins (`nt_mcp.domain.jit`), so the first answers after an install do not wait for the compiler.
"""

from __future__ import annotations

import asyncio
import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None
_warming = threading.Event()  # set once the thread is warming (kernel calls see it), or has given up


def _warm_up() -> None:
    try:
        from nt_mcp.domain import jit
        from nt_mcp.domain.backtest import warmup

        def warm() -> None:
            _warming.set()  # jit.warm_up has marked the warm-up as running: small calls take the twins
            warmup.compile_kernels()

        seconds = jit.warm_up(warm)
    except Exception:
        log.exception("backtest kernel warm-up failed")
        return
    finally:
        _warming.set()
    if seconds is not None:
        log.info("backtest kernels ready", extra={"seconds": round(seconds, 3)})


def start_kernel_warm_up() -> None:
    """Start the warm-up thread (once per process; later calls do nothing)."""
    global _thread
    if _thread is not None:  # the usual case: no lock
        return
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, name="nt-mcp-kernel-warm-up", daemon=True)
            _thread.start()


async def kernel_warm_up_running() -> None:
    """Start the warm-up if it has not started, and return once it runs (numba imported, the warm-up
    marked as running), so a kernel call made next takes the twin or the compiled kernel, never an
    unannounced compilation of its own. Waits at most 30 s."""
    start_kernel_warm_up()
    if not _warming.is_set():
        await asyncio.to_thread(_warming.wait, 30)
