"""The handshake: spawn -> initialize -> tools/list, nt-mcp vs the mcp SDK's bare ``MCPServer``.

Each round spawns, in turn, the bare server (`bare_ping_server.py`), ``nt-mcp serve`` on SQLite and
``nt-mcp serve`` on PostgreSQL + Redis (throwaway servers started like the tests', unless
``--pg-url``/``--redis-url`` are given), each over stdio (JSON-RPC lines on its stdin and stdout), and times
three figures: until tools/list has answered ("listed"), the server's CPU seconds by then (steadier
than wall time on a busy machine), and until the process has exited after stdin closed ("closed", what
`bench_guard.py`'s handshake row times). Databases are migrated
before the first round (a server on a current schema skips Alembic), and each server is started once,
untimed, before it (nt-mcp's first start writes its tool listing cache, `server.listing_cache`; every
later start answers from it). ``--cold-cache`` deletes that cache before each handshake instead (a first
start, or one after an upgrade). Medians of interleaved rounds; ratios nt-mcp / bare (lower is better).

``--baseline-src DIR`` (repeatable) adds ``nt-mcp serve`` run from another checkout's ``src`` (e.g. the commit
before a change: ``git archive REV src sql | tar -x -C /tmp/base``) to the same rounds.
``--importtime`` prints, for one extra SQLite handshake under ``python -X importtime`` (warm cache unless
``--cold-cache``), the top-level imports by cumulative time (the imports done before tools/list answered).

Run: ``python benchmarks/bench_handshake.py --rounds 7``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cli import server_env  # noqa: E402

BARE = str(Path(__file__).resolve().parent / "bare_ping_server.py")


INITIALIZE = (
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    '"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
)
LIST = '{"jsonrpc":"2.0","method":"notifications/initialized"}\n{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
TICKS = os.sysconf("SC_CLK_TCK")


def command(nt: bool, data: Path, extra: dict[str, str], src: Path | None = None) -> tuple[list[str], dict[str, str]]:
    env = server_env(data, **extra)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return [sys.executable, *(["-m", "nt_mcp", "serve"] if nt else [BARE])], env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def handshake(server: tuple[list[str], dict[str, str]], clear: Path | None = None) -> tuple[float, float, float]:
    """Seconds from spawn until tools/list answered, the server's CPU seconds by then, and seconds
    until the process exited after stdin closed. The stdio transport is JSON-RPC lines, written here.
    ``clear``: a data home whose tool listing cache is deleted first (a cold start)."""
    if clear is not None:
        shutil.rmtree(clear / "cache", ignore_errors=True)
    args, env = server
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(INITIALIZE)
    proc.stdin.flush()
    assert '"id":1' in proc.stdout.readline()
    proc.stdin.write(LIST)
    proc.stdin.flush()
    listing = proc.stdout.readline()
    listed = time.perf_counter() - started
    cpu = cpu_seconds(proc.pid)
    assert '"id":2' in listing and '"tools"' in listing, listing[:200]
    proc.stdin.close()
    proc.wait(timeout=60)
    return listed, cpu, time.perf_counter() - started


def migrate(data: Path, extra: dict[str, str], src: Path | None = None) -> None:
    env = server_env(data, **extra) | ({"PYTHONPATH": str(src)} if src is not None else {})
    done = subprocess.run(
        [sys.executable, "-m", "nt_mcp", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def top_imports(data: Path, count: int = 15) -> list[tuple[float, str]]:
    """The top-level imports of one SQLite handshake by cumulative seconds (python -X importtime)."""
    env = server_env(data) | {"PYTHONPROFILEIMPORTTIME": "1"}
    log = data / "importtime.txt"  # a file, not a pipe: ~100 kB of lines would fill a pipe nobody reads yet
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nt_mcp", "serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdin is not None and proc.stdout is not None
    init = (
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        '"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
    )
    proc.stdin.write(init)
    proc.stdin.flush()
    proc.stdout.readline()
    proc.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    proc.stdin.write('{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
    proc.stdin.flush()
    proc.stdout.readline()
    proc.kill()  # the imports made after tools/list (the kernel warm-up's) are not the handshake's
    proc.communicate(timeout=30)
    rows: list[tuple[float, str]] = []
    for line in log.read_text().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith("  "):  # top level: one space before the name
            rows.append((int(cumulative) / 1e6, name.strip()))
    return sorted(rows, reverse=True)[:count]


def interleave(rounds: int, runs: dict[str, Callable[[], tuple[float, float, float]]]) -> dict[str, list[float]]:
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(run())
    return {name: [statistics.median(s[i] for s in values) for i in range(3)] for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pg-url", help="PostgreSQL URL of a database to use (else a throwaway server is started)")
    parser.add_argument("--redis-url", help="Redis URL (else a throwaway server is started)")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        action="append",
        default=[],
        help="also run nt-mcp from this checkout's src (repeatable)",
    )
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="delete nt-mcp's tool listing cache before each handshake (default: warm, as every start after the first)",
    )
    parser.add_argument("--importtime", action="store_true", help="print the top imports of one SQLite handshake")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-handshake-"))
    started: list[Any] = []
    pg_url, redis_url = args.pg_url, args.redis_url
    if not args.skip_pg and (pg_url is None or redis_url is None):
        from tests.servers import PostgresServer, RedisServer

        if pg_url is None:
            pg = PostgresServer.start()
            started.append(pg)
            pg_url = pg.admin_url
        if redis_url is None:
            rs = RedisServer.start()
            started.append(rs)
            redis_url = rs.url
    try:
        stacks: dict[str, dict[str, str]] = {"SQLite": {}}
        if not args.skip_pg:
            stacks["PostgreSQL + Redis"] = {"NT_DATABASE_URL": pg_url, "NT_REDIS_URL": redis_url}
        runs: dict[str, Callable[[], tuple[float, float, float]]] = {
            "bare": lambda: handshake(command(False, tmp / "bare", {}))
        }
        for label, extra in stacks.items():
            data = tmp / label.split()[0]
            migrate(data, extra)
            runs[f"nt {label}"] = lambda data=data, extra=extra: handshake(  # type: ignore[misc]
                command(True, data, extra), data if args.cold_cache else None
            )
            for number, baseline in enumerate(args.baseline_src, 1):
                src = baseline.resolve()
                base = tmp / f"base{number}-{label.split()[0]}"
                migrate(base, extra, src)
                runs[f"{src.parent.name} {label}"] = lambda base=base, extra=extra, src=src: handshake(  # type: ignore[misc]
                    command(True, base, extra, src), base if args.cold_cache else None
                )
        for run in runs.values():  # untimed: a server's first start writes the tool listing cache
            run()
        medians = interleave(args.rounds, runs)
        imports = top_imports(tmp / "SQLite") if args.importtime else []
    finally:
        for server in started:
            server.stop()

    load = os.getloadavg()
    print(f"rounds={args.rounds} (medians of interleaved rounds); load average {' '.join(f'{x:.2f}' for x in load)}")
    print("| server | listed (s) | server CPU by then (s) | closed (s) | listed / bare | CPU / bare | closed / bare |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    bare = medians["bare"]
    for name, figures in medians.items():
        listed, cpu, closed = figures
        ratios = " | ".join(f"{value / reference:.2f}x" for value, reference in zip(figures, bare, strict=True))
        print(f"| {name} | {listed:.3f} | {cpu:.2f} | {closed:.3f} | {ratios} |")
    if imports:
        print("\ntop-level imports of one nt-mcp SQLite handshake (python -X importtime, cumulative s):")
        for seconds, name in imports:
            print(f"  {seconds:6.3f}  {name}")


if __name__ == "__main__":
    main()
