"""Fast CPU path of the dense layer: its matrix products on every numba thread.

Same contract as ops.dense's reference. NumPy's BLAS runs on one thread in a tuned process (see
engine/tuning.py: its idle workers would spin on the cores the conv kernels need), so a plain
x @ W^T leaves one of two cores idle for the dense layers (~7 % of a 2-thread step at batch 256).
Here each numba thread makes one single-threaded BLAS call (numba's np.dot, SciPy's OpenBLAS) on a
fixed slice, so the result does not depend on scheduling and needs no reduction:

    y  = x W^T + b      rows of the batch split over threads; below TRANSPOSED_BELOW rows
                        y^T = W x^T, rows of W split over threads, then transposed back
    gW = gy^T x         rows of gW (output units) split over one half of the threads (the larger),
                        from gy^T made contiguous
    gx = gy W           rows of the batch split over the other half

The backward's two products run side by side rather than one after the other on all threads: each
BLAS call then has twice the rows, and no two threads pack the same panel of W or x. The study's
dense1 (1,024 -> 256) on two threads, medians of 400 paired calls: batch 32 0.28 ms against 0.40
for both products split, 64 0.48 / 0.64, 128 0.74 / 0.93, 256 1.98 / 2.21; dense2 (256 -> 256)
1.07-1.28x. Splitting a product's rows leaves each entry's sum as it was: the same numbers.
"""
import numba
import numpy as np
from numba import njit, prange

from . import numba_blas

# Below this many rows the forward computes y^T = W x^T: W becomes BLAS's long left operand rather
# than a short batch's wide right one. The study's dense1 (1,024 -> 256), medians of 400 calls,
# x W^T against W x^T: batch 32 0.39 / 0.25 ms on one thread, 0.48 / 0.21 on two; batch 64 0.57 /
# 0.48 and 0.61 / 0.32; batch 128 0.88 / 0.92 and 0.75 / 0.59, where dense2 (256 -> 256) loses
# 0.21 / 0.24 and 0.14 / 0.19; batch 256 1.56 / 1.66 and 1.08 / 1.16. The two forms sum each entry
# in the same order for these shapes (equal bit for bit), not everywhere: on 2 threads, batches of
# 2 or 3 rows, and the one-unit dense3 at 100-127 rows, differ in the last bits.
TRANSPOSED_BELOW = 128


@njit(cache=True)
def _rows(a, lo, hi):
    """Rows lo..hi of the C-contiguous matrix a, typed as C-contiguous (np.dot's out needs it)."""
    return a.ravel()[lo * a.shape[1]:hi * a.shape[1]].reshape((hi - lo, a.shape[1]))


@njit(cache=True, parallel=True)
def _split_product(a, m, bias, out, nchunks, bias_per_row):
    """out = a @ m with the rows of a (and of out) split over nchunks threads, plus the bias: along
    every row (y = x W^T + b), or with bias_per_row, bias[r] on all of row r (y^T = W x^T + b)."""
    n = a.shape[0]
    for t in prange(nchunks):
        lo, hi = t * n // nchunks, (t + 1) * n // nchunks
        if hi > lo:
            part = _rows(out, lo, hi)
            np.dot(_rows(a, lo, hi), m, part)
            for r in range(hi - lo):
                if bias_per_row:
                    part[r] += bias[lo + r]
                else:
                    part[r] += bias


@njit(cache=True, parallel=True)
def _backward(x, w, gy, gyt, gx, gw, nchunks, need_gx):
    """gw = gyt @ x with its rows split over the first nchunks - nchunks // 2 threads and, when
    need_gx, gx = gy @ w with the batch rows split over the others (on one thread, both in turn)."""
    n, out = gy.shape[0], w.shape[0]
    gx_threads = nchunks // 2 if need_gx else 0
    gw_threads = nchunks - gx_threads
    for t in prange(nchunks):
        if t < gw_threads:
            lo, hi = t * out // gw_threads, (t + 1) * out // gw_threads
            if hi > lo:
                np.dot(_rows(gyt, lo, hi), x, _rows(gw, lo, hi))
        if need_gx and (t >= gw_threads or gx_threads == 0):
            part, parts = (t - gw_threads, gx_threads) if gx_threads else (0, 1)
            lo, hi = part * n // parts, (part + 1) * n // parts
            if hi > lo:
                np.dot(_rows(gy, lo, hi), w, _rows(gx, lo, hi))


def _prepare(*arrays):
    """C-contiguous copies (or the arrays themselves) in the first array's float dtype."""
    dtype = arrays[0].dtype if arrays[0].dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return [np.ascontiguousarray(a, dtype) for a in arrays]


def dense_forward(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> y: (N, out), as ops.dense.dense_forward_reference."""
    x, w, b = _prepare(x, w, b)
    n, out = x.shape[0], w.shape[0]
    threads = numba.get_num_threads()
    if n < TRANSPOSED_BELOW:
        yt = np.empty((out, n), x.dtype)
        with numba_blas.single_threaded():
            _split_product(w, x.T, b, yt, max(1, min(threads, out)), True)
        return np.ascontiguousarray(yt.T)
    y = np.empty((n, out), x.dtype)
    with numba_blas.single_threaded():
        _split_product(x, w.T, b, y, max(1, min(threads, n)), False)
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
    """Compile (or load from numba's on-disk cache) every kernel for `dtype` on small inputs."""
    for n in (2, TRANSPOSED_BELOW):
        x, w = np.ones((n, 3), dtype), np.ones((2, 3), dtype)
        dense_forward(x, w, np.zeros(2, dtype))
        dense_backward(x, w, np.ones((n, 2), dtype))
