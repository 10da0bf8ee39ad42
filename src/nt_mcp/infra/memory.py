"""Give freed heap memory back to the operating system after heavy work.

glibc keeps memory a process freed in its heap for reuse, and after large arrays were freed it raises
its mmap threshold, so later large arrays also come from the heap: a backtest over millions of bars
leaves the server's resident memory tens to hundreds of MB above its baseline although nothing is in
use. `release_free_memory` calls glibc's ``malloc_trim(0)``, which returns those free pages (a few
milliseconds); elsewhere (musl, macOS) it does nothing. The guard calls it after any call that took
longer than a second, and a stopped optimisation calls it when its last chunk ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; True when something was released."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
