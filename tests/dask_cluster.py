"""A real local Dask cluster for tests and benchmarks: ``dask scheduler`` and ``dask worker`` processes
(the [dask] extra's own command) on loopback, free ports, no dashboard, one thread per worker, no nanny
(so killing a worker's process kills the worker)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DASK = Path(sys.executable).with_name("dask")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalDaskCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker process: no goodbye to the scheduler."""
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait(10)

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


async def start_cluster(workers: int, log_dir: Path) -> LocalDaskCluster:
    """Start a scheduler and ``workers`` single-thread workers; return once all workers are registered."""
    from distributed import Client

    os.makedirs(log_dir, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (log_dir / f"{name}.log").open("wb")
        return subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, env=env)

    scheduler = spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    cluster = LocalDaskCluster(address, scheduler)
    try:
        for i in range(workers):
            cluster.workers.append(
                spawn(
                    f"worker{i}",
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                )
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await Client(address, asynchronous=True, timeout=5)  # type: ignore[no-untyped-call]
                break
            except OSError:
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise
                await asyncio.sleep(0.3)
        try:
            await client.wait_for_workers(workers, timeout=60)
        finally:
            await client.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster
