"""Fully connected layer y = x W^T + b, with W stored (out, in) as in PyTorch/Keras exchange format.

The `*_reference` functions are the readable definition (NumPy or CuPy arrays); `dense_forward` /
`dense_backward` choose: `kernels="fast"` on CPU arrays large enough to pay for a parallel region
calls numba_dense.py (the products on every numba thread), anything else the reference.
"""
from .backend import is_gpu_array

# Multiply-adds below which the reference (one BLAS call on one thread) is kept: a parallel region
# costs some microseconds, more than the last layer's (256 -> 1) whole product.
FAST_MIN_MACS = 1 << 20


def dense_forward_reference(x, w, b):
    """x: (N, in), w: (out, in), b: (out,) -> y: (N, out)."""
    return x @ w.T + b


def dense_backward_reference(x, w, gy, need_gx=True):
    """Gradients of y = x W^T + b: gx = gy W, gW = gy^T x, gb = sum_n gy."""
    gx = gy @ w if need_gx else None
    return gx, gy.T @ x, gy.sum(axis=0)


def _fast(x, w, kernels):
    """The numba module when the fast kernels apply to these arrays, else None."""
    if kernels not in ("reference", "fast", "cuda"):
        raise ValueError(f"kernels must be 'reference', 'fast' or 'cuda', got {kernels!r}")
    if kernels != "fast" or is_gpu_array(x) or x.shape[0] * w.shape[0] * w.shape[1] < FAST_MIN_MACS:
        return None
    from . import numba_dense
    return numba_dense


def dense_forward(x, w, b, kernels="reference"):
    """Dense forward with the chosen kernels."""
    module = _fast(x, w, kernels)
    return dense_forward_reference(x, w, b) if module is None else module.dense_forward(x, w, b)


def dense_backward(x, w, gy, need_gx=True, kernels="reference"):
    """Dense backward with the chosen kernels; returns (gx or None, gW, gb)."""
    module = _fast(x, w, kernels)
    if module is None:
        return dense_backward_reference(x, w, gy, need_gx=need_gx)
    return module.dense_backward(x, w, gy, need_gx=need_gx)
