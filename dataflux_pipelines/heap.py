"""Give freed heap back to the operating system between stages.

glibc's malloc keeps freed memory in its arenas (one per thread that allocated, up to 8 per core) for
reuse, so after a stage that allocated a lot and freed it (a video's decoded frames, Whisper's audio
buffers, a batch of keyframes) the process keeps that memory resident: freed, but still counted in its
RSS and PSS, and in the peak of the next stage on top of what that stage allocates. `malloc_trim(0)`
returns the free pages of every arena (it walks all of them since glibc 2.8). It costs a few
milliseconds, so it is called at stage boundaries and after each call in a decode worker, not per file.
Elsewhere than glibc (musl, macOS) there is no such call and freed memory stays where the allocator
keeps it; `release_heap` then returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_heap() -> bool:
    """Return freed heap memory to the OS (glibc); True when a trim ran."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
