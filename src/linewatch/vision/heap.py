"""Giving the C heap's free memory back to the system before a large allocation.

Decoding images and computing batches allocate and free many buffers of a few megabytes. glibc keeps what was freed
in the process (its heap grows, and its threshold for giving large blocks their own mappings rises as they are
freed), so it still counts in the resident set when the next large array is made: the training's peak is that
array plus memory nobody uses. ``malloc_trim`` returns the free pages; elsewhere (macOS, Windows, musl) this does
nothing."""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library the process already uses
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc's; musl has none
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
