"""`server.stdio_pipes`: stdin/stdout on event-loop pipes, the wire kept off fds 0/1 while serving."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ECHO = textwrap.dedent(
    """
    import asyncio, os, sys
    from nt_mcp.server.stdio_pipes import pipe_stdio

    async def main():
        async with pipe_stdio() as pipes:
            if pipes is None:
                print("not pipes", file=sys.stderr)
                return
            lines, out = pipes
            print("stray print", flush=True)  # fd 1 is stderr while serving: not on the wire
            os.write(1, b"stray write\\n")
            async for line in lines:
                await out.write(f"{len(line)}:{line[:12]!r}\\n")
                await out.flush()
        print("restored", flush=True)  # after the block, fd 1 is the wire again

    asyncio.run(main())
    """
)


def run(stdin: bytes | Path) -> subprocess.CompletedProcess[bytes]:
    if isinstance(stdin, Path):
        with stdin.open("rb") as file:
            return subprocess.run([sys.executable, "-c", ECHO], stdin=file, capture_output=True, timeout=60)
    return subprocess.run([sys.executable, "-c", ECHO], input=stdin, capture_output=True, timeout=60)


def test_lines_round_trip_over_pipes_and_stray_output_misses_the_wire() -> None:
    big = b"x" * 3_000_000
    done = run(b'{"a":1}\n' + "é✓".encode() + b"\xff\n" + big + b"\nlast-without-newline")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "8:'{\"a\":1}\\n'"
    assert lines[1] == "4:'é✓\ufffd\\n'"  # undecodable bytes replaced, as the SDK's reader does
    assert lines[2] == f"{len(big) + 1}:'xxxxxxxxxxxx'"
    assert lines[3] == "20:'last-without'"
    assert lines[4] == "restored"
    assert "stray print" in done.stderr.decode() and "stray write" in done.stderr.decode()
    assert "stray" not in done.stdout.decode()


def test_a_file_on_stdin_keeps_the_sdk_path(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"a":1}\n')
    done = run(source)
    assert done.returncode == 0, done.stderr
    assert "not pipes" in done.stderr.decode()
