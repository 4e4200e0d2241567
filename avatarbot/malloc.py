"""Freed memory goes back to the system at once, so a decode budget is a memory budget.

glibc serves allocations below a moving threshold (up to 32 MiB) from per-thread arenas
and keeps what is freed there: with selfies decoded on whichever executor thread is free,
each thread's arena kept the ~340 MB of the last pixel bomb it decoded, so a process with
one decode at a time still grew to several GB. Pillow allocates images in blocks of up to
16 MiB, all below that threshold. Fixing the threshold at 1 MiB (`mallopt`) makes every
large block its own mapping, returned to the system when freed; small allocations are
unaffected. A C library without `mallopt` (musl, macOS) is left as it is.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 1024 * 1024


@functools.cache
def return_large_frees() -> bool:
    """Once per process: allocations of `MMAP_THRESHOLD` bytes and more are mapped on their
    own and unmapped when freed. Returns whether the C library took the setting."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; freed memory may stay in the process")
    return done
