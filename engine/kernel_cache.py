"""Is numba's on-disk cache of the fast kernels cold (so the coming warm-up compiles for a while)?
And the warm-up itself, rank by rank."""
from pathlib import Path

COMPILE_NOTICE = "compiling kernels, first run only, ~30 s"


def _dispatchers():
    """Every cached numba function of the fast CPU kernels."""
    from numba.core.registry import CPUDispatcher

    from ops import numba_blas, numba_dense, numba_direct, numba_gemm, numba_sgd, numba_winograd
    return [value for module in (numba_direct, numba_gemm, numba_winograd, numba_blas, numba_sgd, numba_dense)
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


def warm_up_kernels(comm, kernels, log=None):
    """Compile (or load from numba's cache) the fast kernels on rank 0 first: ranks compiling into
    one on-disk cache at once can race. `log` (if given) hears that a cold cache is compiling."""
    if kernels != "fast":
        return
    from ops import block_numba, numba_dense, numba_sgd
    from parallel import root_first

    def warm_up():
        if comm.is_root and log is not None and kernel_cache_is_cold():
            log(COMPILE_NOTICE)
        block_numba.warmup()
        numba_dense.warmup()
        numba_sgd.warmup()
    root_first(comm, warm_up, expected=())
