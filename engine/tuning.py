"""Process tuning for the engine's CPU kernels, applied once by each entry point as its process
starts (run.py's main, runner.train_run for library callers, the benchmarks), never by building a
model nor inside an op:

- glibc keeps freed memory in its heap (ops/numba_heap.py), so every training step reuses the
  previous step's pages instead of page-faulting tens of MB of activations in again;
- NumPy's OpenBLAS runs on one thread (ops/numba_blas.py): the dense layers' matrices are small, and
  its idle worker threads would otherwise spin on a core that the numba kernels after them need.

The thread budget (parallel/threads.py) is read by numpy and numba when they load, so an entry point
sets it before anything imports numpy, and tunes the process after.
"""
from ops.numba_blas import pin_to_one_thread
from ops.numba_heap import keep_freed_memory


def tune_process():
    """Apply both settings (idempotent); returns which of them took effect on this platform."""
    return {"keep_freed_memory": keep_freed_memory(), "numpy_blas_one_thread": pin_to_one_thread("numpy")}
