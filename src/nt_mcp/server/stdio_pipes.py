"""stdin and stdout as event-loop pipes for the stdio transport, instead of worker-thread file reads.

The SDK's ``stdio_server`` wraps stdin and stdout in ``anyio.wrap_file``: every line read, every write
and every flush is a hop to a worker thread and back (three per answered request), which over a
local pipe costs more than the message itself. MCP clients start a stdio server with pipes, so when
fd 0 and fd 1 are both pipes or sockets, `pipe_stdio` reads and writes them on the event loop
(``loop.connect_read_pipe`` / ``connect_write_pipe``) and hands the SDK the two explicit streams;
``stdio_server`` takes them as they are. A terminal or a file keeps the SDK's own path.

Like the SDK's default path, it moves the wire off the standard descriptors while it serves: fd 0
reads the null device and fd 1 writes to stderr, so a stray ``print`` or a child process cannot
write into the protocol stream; both are restored when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from typing import Any

MAX_LINE_BYTES = 256 * 1024 * 1024  # one JSON-RPC message per line; the SDK's own reader has no limit


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class PipeLines:
    """The lines of a pipe as ``str`` (UTF-8, undecodable bytes replaced), for ``async for``."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> PipeLines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:  # EOF: the last line may lack its newline
            if not end.partial:
                raise StopAsyncIteration from None
            line = end.partial
        return line.decode("utf-8", errors="replace")


class _WriteProtocol(asyncio.Protocol):
    """Flow control for a write pipe: `drain` waits while the pipe's buffer is over its high mark."""

    def __init__(self) -> None:
        self._resumed: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.closed = False

    def pause_writing(self) -> None:
        self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed, self.lost = True, exc
        self.resume_writing()

    async def drain(self) -> None:
        if self._resumed is not None:
            await self._resumed
        if self.closed:
            raise BrokenPipeError("the client closed stdout") from self.lost


class PipeWriter:
    """``write`` and ``flush`` of text onto a write pipe, as the SDK's stdout writer calls them."""

    def __init__(self, transport: asyncio.WriteTransport, protocol: _WriteProtocol) -> None:
        self._transport, self._protocol = transport, protocol

    async def write(self, text: str) -> None:
        if self._protocol.closed:
            raise BrokenPipeError("the client closed stdout")
        self._transport.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._protocol.drain()


@contextlib.asynccontextmanager
async def pipe_stdio() -> AsyncIterator[tuple[Any, Any] | None]:
    """(stdin lines, stdout writer) on the event loop while the block runs, or None when fd 0 or fd 1
    is not a pipe or socket (then the caller uses the SDK's threaded path)."""
    if not (_is_pipe(0) and _is_pipe(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in = os.dup(0)
    wire_out = os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # stray reads see EOF, stray writes go to stderr: the wire is ours alone
    os.dup2(2, 1)
    os.close(null)
    transport: asyncio.WriteTransport | None = None
    read_transport: asyncio.BaseTransport | None = None
    try:
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES, loop=loop)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(wire_in, "rb", buffering=0)
        )
        transport, protocol = await loop.connect_write_pipe(_WriteProtocol, os.fdopen(wire_out, "wb", buffering=0))
        yield PipeLines(reader), PipeWriter(transport, protocol)
    finally:
        for open_transport in (read_transport, transport):
            if open_transport is not None:
                open_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
