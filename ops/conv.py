"""2-D convolution, stride 1, 'same' padding, odd square kernels; NCHW images, (out, in, kh, kw) weights.

The reference is im2col + matrix multiply, written with the array module of its inputs so the very
same code is the CuPy GPU path:

    cols[n, (c, i, j), (h, w)] = xpad[n, c, h + i, w + j]          (im2col)
    y[n, o, (h, w)]           = sum_(c,i,j) W[o, (c, i, j)] cols[n, (c, i, j), (h, w)] + b[o]

Backward follows from the same matrix form: gW = sum_n gy_n cols_n^T, gb = sum gy, and
gcols = W^T gy, whose entries are added back onto the padded input they were copied from (col2im).
"""
from .backend import array_module


def _im2col(x, k):
    """Copy every k x k patch of the zero-padded input into columns: (N, C*k*k, H*W)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    p = k // 2
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = xp.empty((n, c, k, k, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xpad[:, :, i:i + h, j:j + w]
    return cols.reshape(n, c * k * k, h * w)


def _col2im(cols, x_shape, k):
    """Adjoint of _im2col: add each column entry back onto the input pixel it was read from."""
    xp = array_module(cols)
    n, c, h, w = x_shape
    p = k // 2
    cols = cols.reshape(n, c, k, k, h, w)
    xpad = xp.zeros((n, c, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + h, j:j + w] += cols[:, :, i, j]
    return xpad[:, :, p:p + h, p:p + w]


def _check_kernel(w):
    k = w.shape[2]
    if w.shape[3] != k or k % 2 != 1:
        raise ValueError(f"conv kernels must be square and odd for 'same' padding, got {w.shape[2:]}")
    return k


def conv2d_forward(x, w, b):
    """y = conv(x, w) + b with 'same' zero padding. x (N,C,H,W), w (O,C,k,k), b (O,) -> (N,O,H,W)."""
    k = _check_kernel(w)
    n, _, h, wd = x.shape
    o = w.shape[0]
    cols = _im2col(x, k)
    y = w.reshape(o, -1) @ cols  # (O, Ckk) @ (N, Ckk, HW) broadcasts over n
    y += b.reshape(1, o, 1)
    return y.reshape(n, o, h, wd)


def conv2d_backward(x, w, gy, need_gx=True):
    """Gradients (gx, gw, gb) of conv2d_forward given dL/dy; gx is None when not needed."""
    k = _check_kernel(w)
    n, o = gy.shape[:2]
    cols = _im2col(x, k)
    gy_mat = gy.reshape(n, o, -1)
    gw = (gy_mat @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    gb = gy_mat.sum(axis=(0, 2))
    gx = None
    if need_gx:
        gcols = w.reshape(o, -1).T @ gy_mat
        gx = _col2im(gcols, x.shape, k)
    return gx, gw, gb
