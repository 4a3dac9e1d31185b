"""Where the GPU kernel tests run: numba's CUDA simulator on NumPy arrays (the default, what CI does),
or a real GPU on CuPy arrays when BATCHLAB_CUDA_TESTS=gpu (as bench/gpu_check.sh runs them).

numba binds numba.cuda to the simulator or to the driver when numba.cuda is first imported, so the
simulator is switched on for that import only and the variable is removed again: the other tests'
subprocesses do not inherit it.
"""
import os

import numpy as np

ON_GPU = os.environ.get("BATCHLAB_CUDA_TESTS") == "gpu"

if not ON_GPU:
    from numba.core import config
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    config.reload_config()
    import numba.cuda  # noqa: E402,F401 - binds numba.cuda to the simulator
    import ops.cuda_launch  # noqa: E402,F401 - reads the simulator flag when imported
    del os.environ["NUMBA_ENABLE_CUDASIM"]
    xp = np
else:
    import cupy as xp  # noqa: F401


def on_device(a):
    """Copy a NumPy array to where the kernels run (a CuPy array on a GPU, itself in simulation)."""
    return xp.asarray(a)


def on_host(a):
    """Copy a kernel result back to a NumPy array."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def max_relative_error(result, reference):
    """max |result - reference| / max |reference| (0 when both are 0)."""
    result = np.asarray(on_host(result), dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.abs(reference).max()
    error = np.abs(result - reference).max()
    return float(error / scale) if scale > 0 else float(error)


TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
