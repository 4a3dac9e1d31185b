"""Backend selection: the same op code runs on NumPy (CPU) and CuPy (GPU) arrays."""
import numpy as np

try:  # CuPy is optional; without it every array is a NumPy array.
    import cupy as _cupy
except Exception:  # noqa: BLE001 - any import failure simply means "no GPU backend"
    _cupy = None


def array_module(x):
    """Return the array namespace (numpy or cupy) that owns array `x`."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    return np


def is_gpu_array(x):
    """True when `x` lives on a GPU (a CuPy array)."""
    return array_module(x) is not np


def to_host(x):
    """Copy an array to host memory as a NumPy array (no copy if it already is one)."""
    return x.get() if is_gpu_array(x) else np.asarray(x)
