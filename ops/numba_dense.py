"""Fast CPU path of the dense layer: its matrix products on every numba thread.

Same contract as ops.dense's reference. NumPy's BLAS runs on one thread in a tuned process (see
engine/tuning.py: its idle workers would spin on the cores the conv kernels need), so a plain
x @ W^T leaves one of two cores idle for the dense layers (~7 % of a 2-thread step at batch 256).
Here each numba thread makes one single-threaded BLAS call (numba's np.dot, SciPy's OpenBLAS) on a
fixed slice, so the result does not depend on scheduling and needs no reduction:

    y  = x W^T + b      rows of the batch split over threads
    gx = gy W           rows of the batch split over threads
    gW = gy^T x         rows of gW (output units) split over threads, from gy^T made contiguous
"""
import numba
import numpy as np
from numba import njit, prange

from . import numba_blas


@njit(cache=True)
def _rows(a, lo, hi):
    """Rows lo..hi of the C-contiguous matrix a, typed as C-contiguous (np.dot's out needs it)."""
    return a.ravel()[lo * a.shape[1]:hi * a.shape[1]].reshape((hi - lo, a.shape[1]))


@njit(cache=True, parallel=True)
def _forward(x, wt, b, y, nchunks):
    """y = x @ wt + b with the rows of x split over nchunks threads (wt = W^T, a transposed view)."""
    n = x.shape[0]
    for t in prange(nchunks):
        lo, hi = t * n // nchunks, (t + 1) * n // nchunks
        if hi > lo:
            part = _rows(y, lo, hi)
            np.dot(_rows(x, lo, hi), wt, part)
            for r in range(hi - lo):
                for o in range(b.shape[0]):
                    part[r, o] += b[o]


@njit(cache=True, parallel=True)
def _backward(x, w, gy, gyt, gx, gw, nchunks, need_gx):
    """gx = gy @ w (batch rows split) and gw = gyt @ x (output rows split) over nchunks threads."""
    n, out = gy.shape[0], w.shape[0]
    for t in prange(nchunks):
        lo, hi = t * out // nchunks, (t + 1) * out // nchunks
        if hi > lo:
            np.dot(_rows(gyt, lo, hi), x, _rows(gw, lo, hi))
        lo, hi = t * n // nchunks, (t + 1) * n // nchunks
        if need_gx and hi > lo:
            np.dot(_rows(gy, lo, hi), w, _rows(gx, lo, hi))


def _prepare(*arrays):
    """C-contiguous copies (or the arrays themselves) in the first array's float dtype."""
    dtype = arrays[0].dtype if arrays[0].dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return [np.ascontiguousarray(a, dtype) for a in arrays]


def dense_forward(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> y: (N, out), as ops.dense.dense_forward_reference."""
    x, w, b = _prepare(x, w, b)
    y = np.empty((x.shape[0], w.shape[0]), x.dtype)
    with numba_blas.single_threaded():
        _forward(x, w.T, b, y, max(1, min(numba.get_num_threads(), x.shape[0])))
    return y


def dense_backward(x, w, gy, need_gx=True):
    """(gx or None, gW, gb) as ops.dense.dense_backward_reference."""
    x, w, gy = _prepare(x, w, gy)
    gw = np.empty(w.shape, x.dtype)
    gx = np.empty(x.shape, x.dtype) if need_gx else np.empty((0, x.shape[1]), x.dtype)
    with numba_blas.single_threaded():
        _backward(x, w, gy, np.ascontiguousarray(gy.T), gx, gw, numba.get_num_threads(), need_gx)
    return (gx if need_gx else None), gw, gy.sum(axis=0)


def warmup(dtype=np.float32):
    """Compile (or load from numba's on-disk cache) both kernels for `dtype` on tiny inputs."""
    x, w = np.ones((2, 3), dtype), np.ones((2, 3), dtype)
    dense_forward(x, w, np.zeros(2, dtype))
    dense_backward(x, w, np.ones((2, 2), dtype))
