"""GPU kernels: bias + ReLU + 2x2 max-pool applied to a pre-activation, and the gradient routing back.

The wide conv layers compute their pre-activation (without bias) by im2col + a matrix product; this
kernel finishes the block exactly as ops/block.py defines it: it adds the bias to each of a window's
four values, keeps the FIRST maximum (row-major order in the window), and stores one uint8 code per
pooled output: the winner 0..3 when that maximum is > 0, RELU_ZERO (4) otherwise (output 0, no
gradient). Odd sizes are floored. The backward gathers: each pre-activation element takes the pooled
gradient of its window when its window's code names it, else 0.
"""
from numba import cuda

from .backend import array_module
from .cuda_launch import launch
from .pool_code import RELU_ZERO


@cuda.jit
def _bias_relu_pool_kernel(pre, b, y, code):
    n, o, h2, w2 = y.shape
    for t in range(cuda.grid(1), n * o * h2 * w2, cuda.gridsize(1)):
        q = t % w2
        p = (t // w2) % h2
        oc = (t // (w2 * h2)) % o
        s = t // (w2 * h2 * o)
        best = pre[s, oc, 2 * p, 2 * q] + b[oc]
        winner = 0
        for cell in range(1, 4):
            value = pre[s, oc, 2 * p + cell // 2, 2 * q + cell % 2] + b[oc]
            if value > best:  # strictly greater: ties keep the first maximum
                best = value
                winner = cell
        store_pooled(y, code, s, oc, p, q, best, winner)


@cuda.jit(device=True)
def store_pooled(y, code, s, oc, p, q, best, winner):
    """Write one pooled output after the ReLU: max(best, 0), and the one-byte code of the window
    element that won (RELU_ZERO when the ReLU stopped it, so its gradient is 0)."""
    if best > 0:
        y[s, oc, p, q] = best
        code[s, oc, p, q] = winner
    else:
        y[s, oc, p, q] = 0
        code[s, oc, p, q] = RELU_ZERO


@cuda.jit(device=True)
def routed_gradient(gy, code, s, oc, row, col):
    """dL/d(pre-activation) at (s, oc, row, col): the pooled gradient if this element won its window
    and passed the ReLU, else 0 (also for the floored last row/column)."""
    p, q = row // 2, col // 2
    if p >= code.shape[2] or q >= code.shape[3]:
        return 0.0
    if code[s, oc, p, q] == (row % 2) * 2 + col % 2:
        return gy[s, oc, p, q]
    return 0.0


@cuda.jit
def _unpool_kernel(gy, code, g_pre):
    n, o, h, w = g_pre.shape
    for t in range(cuda.grid(1), n * o * h * w, cuda.gridsize(1)):
        col = t % w
        row = (t // w) % h
        oc = (t // (w * h)) % o
        s = t // (w * h * o)
        g_pre[s, oc, row, col] = routed_gradient(gy, code, s, oc, row, col)


def bias_relu_pool_forward(pre, b):
    """(relu(maxpool(pre + b)), uint8 code) for a pre-activation pre (N, O, H, W) without bias."""
    xp = array_module(pre)
    n, o, h, w = pre.shape
    y = xp.empty((n, o, h // 2, w // 2), dtype=pre.dtype)
    code = xp.empty(y.shape, dtype=xp.uint8)
    launch(_bias_relu_pool_kernel, y.size, pre, b, y, code)
    return y, code


def bias_relu_pool_backward(gy, code, pre_shape):
    """dL/d(pre-activation) (N, O, H, W) from the pooled-output gradient gy and the codes."""
    g_pre = array_module(gy).empty(pre_shape, dtype=gy.dtype)
    launch(_unpool_kernel, g_pre.size, gy, code, g_pre)
    return g_pre
