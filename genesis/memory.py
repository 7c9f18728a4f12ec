"""How this process's C allocator treats freed memory: a process-wide choice, made by our programs.

glibc's malloc hands large freed blocks back to the kernel at once, so the next pass's buffers
(16 MiB each for 512 inputs at the app's size) come back as fresh pages that the kernel faults in
and zeroes one by one: about 12,000 page faults, 4% of a 512-input `model.routes` call. Keeping
freed memory for reuse removes them. It changes the whole process, so the library never does it on
its own: the app, the CLI and the benchmark call `keep_freed_memory()` at start.
"""

from __future__ import annotations

import ctypes
import functools
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = (
    (M_MMAP_THRESHOLD, 32 << 20),  # blocks under 32 MiB (glibc's maximum) come from the heap, not mmap
    (M_TRIM_THRESHOLD, 256 << 20),  # free memory at the heap's top is returned only past 256 MiB
    (M_TOP_PAD, 64 << 20),  # and the heap grows 64 MiB at a time
)


@functools.cache  # once per process: the app's script calls it on every rerun
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse. True if it took; False elsewhere
    (another C library or OS), where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS)
