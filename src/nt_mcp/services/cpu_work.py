"""CPU-heavy analytics (fitting networks, solving portfolios) off the event loop, bounded and stoppable.

`CpuWork.run(job, report)` runs ``job(progress, should_stop)`` in a worker thread while the event loop
keeps serving other calls. At most ``max_concurrent`` jobs run at once in this process (a caller waits
for a slot; the tool deadline bounds the wait). ``progress(done, total, message)`` may be called from
the thread; each call is forwarded to ``report`` (an MCP progress notification) on the event loop.
When the calling task is cancelled (the client cancelled, or the tool deadline passed) ``should_stop()``
turns true: jobs check it between fits and end with `Stopped` soon after; the slot is held until the
thread has really finished, so abandoned work never piles up.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Progress = Callable[[int, int, str], None]
StopCheck = Callable[[], bool]
Report = Callable[[float, float | None, str | None], Awaitable[None]]


class CpuWork:
    def __init__(self, max_concurrent: int) -> None:
        self._slots = asyncio.Semaphore(max_concurrent)

    async def run(self, job: Callable[[Progress, StopCheck], T], report: Report | None = None) -> T:
        await self._slots.acquire()
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[tuple[int, int, str]] = asyncio.Queue()

        def progress(done: int, total: int, message: str) -> None:
            loop.call_soon_threadsafe(updates.put_nowait, (done, total, message))

        worker = asyncio.ensure_future(asyncio.to_thread(job, progress, stop.is_set))
        worker.add_done_callback(lambda _: self._slots.release())
        try:
            while True:
                update = asyncio.ensure_future(updates.get())
                done, _ = await asyncio.wait({worker, update}, return_when=asyncio.FIRST_COMPLETED)
                if update in done:
                    if report is not None:
                        await report(*update.result())
                else:
                    update.cancel()
                if worker in done:
                    while report is not None and not updates.empty():  # what the job said before it ended
                        await report(*updates.get_nowait())
                    return worker.result()
        except asyncio.CancelledError:
            stop.set()
            raise
        finally:
            if not worker.done():
                stop.set()
                worker.add_done_callback(_consume)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned worker's outcome so asyncio does not log 'exception never retrieved'."""
    with contextlib.suppress(BaseException):
        task.result()
