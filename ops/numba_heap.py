"""Keep freed memory in the process heap so that every training step reuses the previous step's pages.

A training step allocates and frees the same large arrays each time (activations, codes, input
gradients: tens of MB at batch 256). glibc's malloc serves blocks above its mmap threshold with
fresh mmap() calls and gives the free top of the heap back to the kernel past its trim threshold,
so each step page-faulted all of that memory in again: 40 ms of system time per step at batch 256,
a quarter of the step, spread over the numba kernels that first touch the pages. Raising both
thresholds makes glibc recycle the blocks instead. Peak resident memory stays the peak of live
data; the cost is that it is not returned to the system until the process ends.
"""
import ctypes
import ctypes.util

# mallopt() parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap: a batch-256 input at 128 px is 50 MB. glibc versions
# that cap the threshold lower refuse it, and then get their own maximum (32 MB on 64-bit).
_MMAP_THRESHOLDS = (64 << 20, 32 << 20)
_TRIM_THRESHOLD = 2 ** 31 - 1  # the largest value mallopt's int argument takes

_applied = None


def keep_freed_memory():
    """Make glibc recycle large freed blocks (once per process); False when not on glibc."""
    global _applied
    if _applied is None:
        _applied = False
        name = ctypes.util.find_library("c")
        try:
            mallopt = ctypes.CDLL(name).mallopt
        except (OSError, AttributeError, TypeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        if any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in _MMAP_THRESHOLDS):
            _applied = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    return _applied
