"""Thread control of the two OpenBLAS copies in the process: SciPy's (numba's np.dot) and NumPy's.

numba's np.dot goes through scipy.linalg.cython_blas, i.e. SciPy's own OpenBLAS copy, not NumPy's.
When numba's parallel threads each call it, it must not start threads of its own: two thread pools
on two cores were 2-8x slower. NumPy's copy (the dense layers) matters too: after a multi-threaded
call its worker threads keep spinning for a long while (~0.1 s), taking a core away from the numba
kernels that follow; at batch 32 a training step was slower on two threads than on one.

`single_threaded(library)` pins one copy to one thread for the duration of a block and restores the
previous count, so other users of that BLAS keep their setting; `pin_to_one_thread(library)` does it
for the rest of the process (engine/tuning.py, at an entry point's start). If the library cannot be
found (another NumPy/SciPy build), both do nothing.
"""
import contextlib
import ctypes
import glob
import os

# package, shared-library pattern in <package>.libs, and the suffix of its thread functions
_LIBRARIES = {"scipy": ("scipy", "libscipy_openblas-*.so*", ""),
              "numpy": ("numpy", "libscipy_openblas64_*.so*", "64_")}
_apis = {}


def _load(library):
    """Locate (once) the get/set-thread functions of one OpenBLAS copy; None when unavailable."""
    if library not in _apis:
        _apis[library] = None
        package, pattern, suffix = _LIBRARIES[library]
        try:
            module = __import__(package)
            if library == "scipy":
                import scipy.linalg.cython_blas  # noqa: F401 - loads the library numba binds to
        except ImportError:
            return None
        libdir = os.path.join(os.path.dirname(os.path.dirname(module.__file__)), f"{package}.libs")
        for path in glob.glob(os.path.join(libdir, pattern)):
            lib = ctypes.CDLL(path)
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                set_.argtypes = [ctypes.c_int]
                get.restype = ctypes.c_int
                _apis[library] = (get, set_)
                break
    return _apis[library]


def pin_to_one_thread(library="numpy"):
    """Run one OpenBLAS copy on one thread from now on; False when it cannot be found."""
    api = _load(library)
    if api is None:
        return False
    api[1](1)
    return True


def blas_threads(library="numpy"):
    """The thread count of one OpenBLAS copy now, or None when it cannot be found."""
    api = _load(library)
    return None if api is None else api[0]()


@contextlib.contextmanager
def single_threaded(library="scipy"):
    """Run the body with one OpenBLAS copy ("scipy": numba's np.dot, "numpy": NumPy's) on one thread."""
    api = _load(library)
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
