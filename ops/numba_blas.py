"""Thread control of the BLAS that numba's np.dot calls (SciPy's bundled OpenBLAS).

numba's np.dot goes through scipy.linalg.cython_blas, i.e. SciPy's own OpenBLAS copy, not NumPy's.
When numba's parallel threads each call it, it must not start threads of its own: two thread pools
on two cores were 2-8x slower. `single_threaded()` pins it to one thread for the duration of a
kernel call and restores the previous count, so SciPy users elsewhere keep their setting. NumPy's
BLAS (dense layers, reference ops) is a different library and is left alone. If SciPy's OpenBLAS
cannot be found (another SciPy build), the context manager does nothing.
"""
import contextlib
import ctypes
import glob
import os

_api = None


def _load():
    """Locate (once) the set/get-thread functions of SciPy's OpenBLAS; None when unavailable."""
    global _api
    if _api is None:
        _api = False
        try:
            import scipy
            import scipy.linalg.cython_blas  # noqa: F401 - loads the library numba binds to
        except ImportError:
            return None
        libdir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
        for path in glob.glob(os.path.join(libdir, "libscipy_openblas*.so*")):
            lib = ctypes.CDLL(path)
            if hasattr(lib, "scipy_openblas_set_num_threads"):
                lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
                lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
                _api = (lib.scipy_openblas_get_num_threads, lib.scipy_openblas_set_num_threads)
                break
    return _api or None


@contextlib.contextmanager
def single_threaded():
    """Run the body with numba's BLAS limited to one thread."""
    api = _load()
    if api is None:
        yield
        return
    get, set_ = api
    before = get()
    if before != 1:
        set_(1)
    try:
        yield
    finally:
        if before != 1:
            set_(before)
