"""Keep freed memory in the process, so that the transforms' large tensors are not re-faulted.

Each layer of g_a and g_s makes a new activation of tens of MB (N × H/2 × W/2 float32: 50 MB
for N = 128 on a Kodak image). glibc serves blocks that large with mmap and gives them back to
the kernel when freed, so every layer of every image pays for page faults and zeroing of fresh
pages: on the 2-core CPU that was ~45% of g_a's time for N = 128 (benchmarks/stage-profile.md).
Raising glibc's mmap and trim thresholds makes such blocks come from the heap and stay there
once freed, to be reused by the next layer and the next image.

The cost is that the process keeps its peak heap until it exits, which is what a command that
codes a batch of images wants. The CLI's encode, decode and bench call this once; a program
that uses the library may call it too (it changes the policy of the whole process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap (the default adapts between 128 KiB and 32 MiB, below a
# Kodak image's activations). A glibc that refuses the value makes mallopt return 0: nothing
# changes then, and keep_freed_memory says so.
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 1 << 31  # free memory at the top of the heap kept before giving it back

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set the malloc policy above (once per process). Returns whether it is in effect: False
    where the C library is not glibc (macOS, Windows, musl), which keep their own policy."""
    global _done
    if _done is None:
        _done = _set_glibc_thresholds()
    return _done


def _set_glibc_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    del gnu_get_libc_version
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
