"""Keep freed memory in the process, so that the transforms' large tensors are not re-faulted.

Each layer of g_a and g_s makes a new activation of tens of MB (N × H/2 × W/2 float32: 50 MB
for N = 128 on a Kodak image). glibc serves blocks that large with mmap and gives them back to
the kernel when freed, so every layer of every image pays for page faults and zeroing of fresh
pages: on the 2-core CPU, g_a and g_s of N = 128 on a Kodak image took 216 and 223 ms that way
against 175 and 184 ms with the policy below (`benchmarks/stage_profile.py .data/kodak4
--cli-runs 0`, with and without --default-malloc).
Raising glibc's mmap and trim thresholds makes such blocks come from the heap and stay there
once freed, to be reused by the next layer and the next image.

How high: `Codec` sets the thresholds (`fit_heap_to`) to the largest activation of each image
it runs untiled, and to BASE_BYTES for a tiled image (over 4 MP), whose tile activations and
whole-image tensors then come and go by mmap as before: the heap fragments between the two
sizes, and a 24 MP encode + decode peaked at 3.8 GB with everything in the heap, against 2.4 GB
this way and 2.2 GB with glibc's own policy (`benchmarks/huge_image.py`, N = 128, 2-core CPU;
38 s / 20 s this way, 40 s / 21 s with glibc's). A 1920×1080 photo (untiled, `huge_image.py
--width 1920 --height 1080`, one run): encode 2.5 s, decode 1.3 s, peak 1790 MiB, against
2.8 s, 1.4 s and 1571 MiB with glibc's policy.

The cost is that the process keeps its peak heap until it exits, which is what a command that
codes a batch of images wants. The CLI's encode, decode and bench call `keep_freed_memory`
once; a program that uses the library may call it too (it changes the policy of the whole
process). Without it, `fit_heap_to` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below the mmap threshold come from the heap; glibc's default adapts between 128 KiB and
# 32 MiB, below a Kodak image's activations. BASE_BYTES covers those of N = 128 on a Kodak image
# (50 MB); MAX_BYTES caps what one image may raise it to (an untiled 4 MP image at N = 192).
BASE_BYTES = 64 << 20
MAX_BYTES = 1 << 30
TRIM_BYTES = 2 << 30  # free memory at the top of the heap kept before giving it back

_lock = threading.Lock()
_mallopt: Callable[[int, int], int] | None = None
_enabled: bool | None = None  # None: keep_freed_memory not called yet
_threshold = 0


def keep_freed_memory() -> bool:
    """Set the policy above (once per process), at BASE_BYTES. Returns whether it is in effect:
    False where the C library is not glibc (macOS, Windows, musl), which keep their own."""
    global _enabled, _mallopt
    with _lock:
        if _enabled is None:
            _mallopt = _glibc_mallopt()
            _enabled = _mallopt is not None and _set(BASE_BYTES)
        return _enabled


def fit_heap_to(block_bytes: int) -> None:
    """Let blocks of up to `block_bytes` (plus a margin; at least BASE_BYTES, at most
    MAX_BYTES) come from the heap and stay there, if keep_freed_memory is in effect. Blocks
    already in the heap stay; a lower value only lets larger blocks go back to mmap."""
    if not _enabled:
        return
    want = min(MAX_BYTES, max(BASE_BYTES, block_bytes + block_bytes // 8))
    with _lock:
        if want != _threshold:
            _set(want)


def _set(threshold: int) -> bool:
    global _threshold
    assert _mallopt is not None
    # The trim threshold stays high whatever the mmap threshold: freed heap blocks are kept for
    # the next layer and image (a trim threshold of 64 MiB gave back g_a's blocks after every
    # image and took the whole gain away).
    ok = bool(_mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        _mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES)
    )
    if ok:
        _threshold = threshold
    return ok


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only: musl has mallopt as a stub
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
