"""GPU kernels: im2col and its adjoint col2im, for the wide conv layers whose matrix products go to
the array module (cuBLAS through CuPy on a GPU, NumPy under the simulator).

Same layout as ops/conv.py, 'same' zero padding p = k // 2:
    cols[n, (c, i, j), (h, w)] = x[n, c, h + i - p, w + j - p]   (0 outside the image)
col2im is written as a gather, one thread per input pixel summing the columns that copied it, so no
two threads write the same element (no atomics, deterministic):
    gx[n, c, h, w] = sum_(i,j) gcols[n, (c, i, j), (h - i + p, w - j + p)]
"""
from numba import cuda

from .backend import array_module
from .cuda_launch import launch


@cuda.jit
def _im2col_kernel(x, k, cols):
    n, c_in, h, w = x.shape
    pad = k // 2
    rows, pixels = cols.shape[1], cols.shape[2]
    for t in range(cuda.grid(1), n * rows * pixels, cuda.gridsize(1)):
        pixel = t % pixels
        r = (t // pixels) % rows
        s = t // (pixels * rows)
        c, i, j = r // (k * k), (r // k) % k, r % k
        yy = pixel // w + i - pad
        xx = pixel % w + j - pad
        if 0 <= yy < h and 0 <= xx < w:
            cols[s, r, pixel] = x[s, c, yy, xx]
        else:
            cols[s, r, pixel] = 0


@cuda.jit
def _col2im_kernel(cols, k, zero, gx):
    n, c_in, h, w = gx.shape
    pad = k // 2
    for t in range(cuda.grid(1), n * c_in * h * w, cuda.gridsize(1)):
        xx = t % w
        yy = (t // w) % h
        c = (t // (w * h)) % c_in
        s = t // (w * h * c_in)
        acc = zero  # typed like the arrays, so the sum stays in their precision
        for i in range(k):
            row = yy - i + pad
            if 0 <= row < h:
                for j in range(k):
                    col = xx - j + pad
                    if 0 <= col < w:
                        acc += cols[s, (c * k + i) * k + j, row * w + col]
        gx[s, c, yy, xx] = acc


def im2col(x, k):
    """Every k x k patch of the zero-padded input x (N, C, H, W) as columns: (N, C*k*k, H*W)."""
    n, c, h, w = x.shape
    cols = array_module(x).empty((n, c * k * k, h * w), dtype=x.dtype)
    launch(_im2col_kernel, cols.size, x, k, cols)
    return cols


def col2im(cols, x_shape, k):
    """Adjoint of im2col: the input gradient (N, C, H, W) from the column gradient."""
    gx = array_module(cols).empty(x_shape, dtype=cols.dtype)
    launch(_col2im_kernel, gx.size, cols, k, cols.dtype.type(0), gx)
    return gx
