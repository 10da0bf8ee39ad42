"""Where the chunks of a parameter sweep run: in this process (default) or on a Dask cluster.

A sweep is a list of independent *tasks* ``fn(*args)`` (one per symbol x parameter chunk, see
`nt_mcp.tools.optimization`), each returning its chunk's metrics. `SweepExecutor.map` runs them and
returns their results in task order, calling ``on_done(done, total)`` after each finished task.

- `InProcessSweeps` (default, zero configuration): one task at a time in a worker thread, so the event
  loop keeps serving other calls. The compiled sweep kernel releases the GIL (``nogil=True``), so that
  thread does not stall the loop while it simulates; a cancelled call stops between two tasks and the
  running one frees its memory when it ends. How many sweeps run at once in this process is bounded by
  the callers (the job runner's ``NT_ANALYTICS_MAX_CONCURRENT``, the guard's deadline).
- `DaskSweeps` (``NT_DASK_SCHEDULER=tcp://host:8786``): every task is submitted at once to a
  ``dask.distributed`` cluster (``pure=False``) and gathered as it completes. Each symbol's bars go
  to the cluster once, as a task of their own that the others depend on (not ``scatter``: scattered
  data cannot be recomputed, and the scheduler's active memory manager drops extra replicas, so losing
  the worker holding them would fail the sweep; a task's input can be recomputed from its spec, which
  the scheduler keeps). A worker that dies mid-task has its
  tasks rescheduled by the Dask scheduler on the others (a task that kills
  ``distributed.scheduler.allowed-failures`` + 1 workers fails with ``KilledWorker``, named in the
  job's error). On first connection a worker plugin (`warm_kernels_plugin`) compiles the kernels once
  per worker process; numba's on-disk cache makes later workers on the same machine load them instead.
  Cancelling the call cancels its futures.

The same task functions run in both, on the same numbers, so a sweep gives identical results on the
cluster and in-process (tests/integration/test_dask_cluster.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from nt_mcp.errors import ExternalAPIError
from nt_mcp.infra.memory import release_free_memory

OnDone = Callable[[int, int], Awaitable[None]]
Task = tuple[Callable[..., Any], tuple[Any, ...]]


class SweepExecutor(Protocol):
    name: str

    async def map(self, tasks: Sequence[Task], on_done: OnDone) -> list[Any]: ...

    async def close(self) -> None: ...


class InProcessSweeps:
    """Tasks one by one in a worker thread of this process."""

    name = "in-process"

    async def map(self, tasks: Sequence[Task], on_done: OnDone) -> list[Any]:
        stopped = threading.Event()  # set when the call is stopped: the task still running frees its memory

        def call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
            try:
                return fn(*args)
            finally:
                if stopped.is_set():  # the call is gone: nobody else will free its memory
                    release_free_memory()

        results: list[Any] = []
        try:
            for fn, args in tasks:
                results.append(await asyncio.to_thread(call, fn, args))
                await on_done(len(results), len(tasks))
        except asyncio.CancelledError:
            stopped.set()
            raise
        return results

    async def close(self) -> None:
        return None


def warm_kernels_plugin() -> Any:
    """A Dask worker plugin that compiles (or loads from numba's cache) the sweep and backtest kernels as
    each worker starts, so the first task of a sweep does not pay the compilation."""
    from distributed import WorkerPlugin

    class WarmKernels(WorkerPlugin):
        name = "nt-mcp-warm-kernels"
        idempotent = True

        def setup(self, worker: Any) -> None:
            from nt_mcp.domain.backtest.warmup import compile_kernels

            compile_kernels()

    return WarmKernels()


class DaskSweeps:
    """Tasks on the ``dask.distributed`` cluster at ``address`` (an asynchronous client, opened on first use)."""

    name = "dask"

    def __init__(self, address: str, *, connect_timeout_s: float = 10.0) -> None:
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None or self._client.status in ("closed", "closing"):
                try:
                    from distributed import Client
                except ImportError:  # pragma: no cover - the [dask] extra is missing
                    raise ExternalAPIError(
                        "NT_DASK_SCHEDULER is set but dask.distributed is not installed (pip install 'nt-mcp[dask]')",
                        service="dask",
                        retryable=False,
                    ) from None
                try:
                    client = await Client(  # type: ignore[no-untyped-call]
                        self.address, asynchronous=True, timeout=self.connect_timeout_s
                    )
                except (OSError, TimeoutError) as error:
                    raise ExternalAPIError(
                        f"the Dask scheduler at {self.address} (NT_DASK_SCHEDULER) cannot be reached: {error}",
                        service="dask",
                    ) from None
                await client.register_plugin(warm_kernels_plugin())
                self._client = client
            return self._client

    async def map(self, tasks: Sequence[Task], on_done: OnDone) -> list[Any]:
        from distributed import as_completed

        client = await self.client()
        shared: dict[int, Any] = {}  # id(bars) -> the future holding them: each symbol's bars sent once
        submitted = []
        for fn, args in tasks:
            sent = []
            for arg in args:
                if _is_bars(arg):
                    if id(arg) not in shared:
                        shared[id(arg)] = client.submit(_same, arg, pure=False)
                    sent.append(shared[id(arg)])
                else:
                    sent.append(arg)
            submitted.append(client.submit(fn, *sent, pure=False))
        position = {future.key: i for i, future in enumerate(submitted)}
        results: list[Any] = [None] * len(submitted)
        done = 0
        try:
            async for future in as_completed(submitted):  # type: ignore[no-untyped-call]
                results[position[future.key]] = await future
                done += 1
                await on_done(done, len(submitted))
        finally:
            pending = [f for f in submitted if not f.done()]
            if pending:
                with contextlib.suppress(Exception):
                    await client.cancel(pending)
        return results

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None


def compiled_sweep_signatures() -> int:
    """How many compiled specialisations the SMA sweep kernel has in this process (0: not compiled yet);
    run on each Dask worker (``client.run``) it shows the warm-up plugin did its work."""
    from nt_mcp.domain.backtest.sweep import _sweep

    return len(_sweep.signatures)


def _same(value: Any) -> Any:
    """A task that holds its argument: bars sent once, recomputable if their worker dies."""
    return value


def _is_bars(value: Any) -> bool:
    from nt_mcp.domain.bars import Bars

    return isinstance(value, Bars)


def build_sweeps(dask_scheduler: str) -> SweepExecutor:
    """`DaskSweeps` when ``NT_DASK_SCHEDULER`` is set, else `InProcessSweeps`."""
    return DaskSweeps(dask_scheduler) if dask_scheduler.strip() else InProcessSweeps()
