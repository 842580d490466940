"""Host-memory policy for long-running processes (the node).

Every window allocates large temporaries on the CPU (preprocessed frames, and on a CPU
backbone the activations). glibc serves allocations above its mmap threshold with ``mmap``
and returns them to the OS on free, but by default it raises that threshold each time such
a block is freed (up to 32 MiB), after which the same temporaries come from the heap,
fragment it, and the resident set drifts by tens of MiB from window to window. Pinning the
threshold keeps large temporaries on ``mmap`` and the resident set flat.

The pinned value (256 KiB) sits below every image-sized buffer the node handles: a received
640x480 rgb8 message and its decoded copy (900 KiB), the 518-wide frame kept for the model
(595 KiB), whose lifetimes differ (one callback vs. several windows). With a 1 MiB threshold
those came from the heap and fragmented it: over a 10,000-image soak at 4x over-rate the
heaps wandered between 146 and 155 MiB with 8 to 23 MiB of free chunks held (``mallinfo2``,
``malloc_info``, growing towards the end); with 256 KiB they stayed at 115 MiB with 3 MiB
free from the first sample to the last (README, soak row). The cost is one ``mmap``/
``munmap`` pair per image-sized buffer (about 70 live mappings instead of 25).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

_log = logging.getLogger(__name__)

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt`` (malloc.h).
_M_MMAP_THRESHOLD = -3
#: Default pinned threshold: blocks of 256 KiB and more are mmapped (image-sized buffers included).
DEFAULT_MMAP_THRESHOLD = 256 << 10


def pin_mmap_threshold(threshold_bytes: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (disabling its dynamic adjustment) for this process.

    Args:
        threshold_bytes: allocations of at least this size are served by ``mmap``.

    Returns:
        True if applied; False where the C library is not glibc (nothing changes there).
    """
    if threshold_bytes <= 0:
        raise ValueError(f"threshold_bytes must be > 0, got {threshold_bytes}")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _log.debug("no glibc mallopt here; host allocator left as it is")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))
