"""Is numba's on-disk cache of the fast kernels cold (so the coming warm-up compiles for a while)?"""
from pathlib import Path

COMPILE_NOTICE = "compiling kernels, first run only, ~30 s"


def _dispatchers():
    """Every cached numba function of the fast CPU kernels."""
    from numba.core.registry import CPUDispatcher

    from ops import numba_blas, numba_direct, numba_gemm
    return [value for module in (numba_direct, numba_gemm, numba_blas)
            for value in vars(module).values()
            if isinstance(value, CPUDispatcher) and value.stats.cache_path]  # cache=True only


def kernel_cache_is_cold():
    """True when some fast kernel has no index file in numba's cache folder yet.

    numba names a function's cache index '<module>.<qualname>-<line>.py<version>.nbi' inside the
    folder `dispatcher.stats.cache_path` (next to the source, or under NUMBA_CACHE_DIR)."""
    for dispatcher in _dispatchers():
        folder = Path(dispatcher.stats.cache_path)
        module = dispatcher.py_func.__module__.rsplit(".", 1)[-1]
        if not any(folder.glob(f"{module}.{dispatcher.py_func.__qualname__}-*.nbi")):
            return True
    return False
