"""GPU path of the fused VGG block (conv + bias + ReLU + 2x2 max-pool): numba.cuda kernels.

Same contract as ops.block.conv_relu_pool_reference / conv_relu_pool_backward_reference, and the same
split as the CPU kernels (ops/block_numba.py):
- few input channels: direct kernels. The forward computes, per pooled output, the four conv sums of
  its window, adds the bias and keeps only the maximum and its one-byte code; the pre-pool
  activation is never written. The backward reads the codes instead of any activation.
- from GEMM_MIN_CHANNELS input channels on: im2col (ops/cuda_im2col.py) and matrix products on the
  array module (cuBLAS via CuPy), then the bias/ReLU/pool kernels of ops/cuda_pool.py.

Direct backward, with g_pre the pooled gradient routed to each window's winner (0 elsewhere):
    gx[n, c, h, w] = sum_(o,i,j) g_pre[n, o, h - i + p, w - j + p] W[o, c, i, j]   (gather, per pixel)
    gW[o, c, i, j] = sum over winning positions (n, r, s) of g_pre x[n, c, r + i - p, s + j - p]
    gb[o]          = sum over winning positions of g_pre
gW and gb: each thread sums one parameter over an interleaved share of the pooled positions in
float64, the array module adds the shares up. No atomics and no barriers, so the result does not
depend on thread scheduling.
"""
from numba import cuda

from .backend import array_module
from .cuda_im2col import col2im, im2col
from .cuda_launch import launch
from .pool_code import RELU_ZERO
from .cuda_pool import (bias_relu_pool_backward, bias_relu_pool_forward, routed_gradient,
                        store_pooled)

# From this many input channels on, im2col + cuBLAS. Taken over from the CPU measurement
# (ops/block_numba.py); bench/gpu_check.sh times the study net, not this split.
GEMM_MIN_CHANNELS = 16

# Pooled positions each thread of the direct parameter gradient sums: enough threads to fill a GPU
# (batch 256 at 128 px: 4,096 shares of each first-layer parameter), few partial sums to add.
POSITIONS_PER_THREAD = 256


@cuda.jit
def _direct_forward_kernel(x, w, b, zero, y, code):
    n, c_in, h, wd = x.shape
    o, k = w.shape[0], w.shape[2]
    h2, w2 = y.shape[2], y.shape[3]
    pad = k // 2
    for t in range(cuda.grid(1), n * o * h2 * w2, cuda.gridsize(1)):
        q = t % w2
        p = (t // w2) % h2
        oc = (t // (w2 * h2)) % o
        s = t // (w2 * h2 * o)
        best = zero
        winner = 0
        for cell in range(4):
            row, col = 2 * p + cell // 2, 2 * q + cell % 2
            acc = zero
            for c in range(c_in):
                for i in range(k):
                    yy = row + i - pad
                    if 0 <= yy < h:
                        for j in range(k):
                            xx = col + j - pad
                            if 0 <= xx < wd:
                                acc += x[s, c, yy, xx] * w[oc, c, i, j]
            acc += b[oc]
            if cell == 0 or acc > best:  # strictly greater: ties keep the first maximum
                best = acc
                winner = cell
        store_pooled(y, code, s, oc, p, q, best, winner)


@cuda.jit
def _direct_input_grad_kernel(w, code, gy, zero, gx):
    n, c_in, h, wd = gx.shape
    o, k = w.shape[0], w.shape[2]
    pad = k // 2
    for t in range(cuda.grid(1), n * c_in * h * wd, cuda.gridsize(1)):
        xx = t % wd
        yy = (t // wd) % h
        c = (t // (wd * h)) % c_in
        s = t // (wd * h * c_in)
        acc = zero
        for oc in range(o):
            for i in range(k):
                row = yy - i + pad
                if 0 <= row < h:
                    for j in range(k):
                        col = xx - j + pad
                        if 0 <= col < wd:
                            acc += routed_gradient(gy, code, s, oc, row, col) * w[oc, c, i, j]
        gx[s, c, yy, xx] = acc


@cuda.jit
def _direct_param_grad_kernel(x, code, gy, k, partial):
    """partial[e, chunk]: the share of parameter e (the weights in order, then the biases) summed
    over the pooled positions chunk, chunk + chunks, ... (adjacent threads read adjacent positions)."""
    n, c_in, h, wd = x.shape
    o = code.shape[1]
    h2, w2 = code.shape[2], code.shape[3]
    pad = k // 2
    n_weights = o * c_in * k * k
    elements, chunks = partial.shape
    for t in range(cuda.grid(1), elements * chunks, cuda.gridsize(1)):
        chunk = t % chunks
        e = t // chunks
        is_bias = e >= n_weights
        oc = e - n_weights if is_bias else e // (k * k * c_in)
        c = (e // (k * k)) % c_in
        i = (e // k) % k
        j = e % k
        acc = 0.0
        for position in range(chunk, n * h2 * w2, chunks):
            q = position % w2
            p = (position // w2) % h2
            s = position // (w2 * h2)
            cell = int(code[s, oc, p, q])  # int: uint8 arithmetic would wrap below
            if cell != RELU_ZERO:
                if is_bias:
                    acc += gy[s, oc, p, q]
                else:
                    yy = 2 * p + cell // 2 + i - pad
                    xx = 2 * q + cell % 2 + j - pad
                    if 0 <= yy < h and 0 <= xx < wd:
                        acc += gy[s, oc, p, q] * x[s, c, yy, xx]
        partial[e, chunk] = acc


def _uses_gemm(x):
    return x.shape[1] >= GEMM_MIN_CHANNELS


def conv_relu_pool_forward(x, w, b, gemm=None):
    """Fused forward on the GPU; returns (pooled output, uint8 code). `gemm` forces a route (tests);
    by default the channel count picks it."""
    xp = array_module(x)
    n, _, h, wd = x.shape
    o, k = w.shape[0], w.shape[2]
    if _uses_gemm(x) if gemm is None else gemm:
        pre = (w.reshape(o, -1) @ im2col(x, k)).reshape(n, o, h, wd)
        return bias_relu_pool_forward(pre, b)
    y = xp.empty((n, o, h // 2, wd // 2), dtype=x.dtype)
    code = xp.empty(y.shape, dtype=xp.uint8)
    launch(_direct_forward_kernel, y.size, x, w, b, x.dtype.type(0), y, code)
    return y, code


def conv_relu_pool_backward(x, w, code, gy, need_gx=True, gemm=None):
    """Fused backward on the GPU; returns (gx or None, gw, gb)."""
    xp = array_module(x)
    n, _, h, wd = x.shape
    o, k = w.shape[0], w.shape[2]
    if _uses_gemm(x) if gemm is None else gemm:
        # the matrix form of ops/conv.py's backward, on the routed pre-activation gradient
        g_pre = bias_relu_pool_backward(gy, code, (n, o, h, wd)).reshape(n, o, h * wd)
        cols = im2col(x, k)
        gw = (g_pre @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        gb = g_pre.sum(axis=(0, 2))
        gx = col2im(w.reshape(o, -1).T @ g_pre, x.shape, k) if need_gx else None
        return gx, gw, gb
    positions = code.size // o
    chunks = max(1, positions // POSITIONS_PER_THREAD)
    partial = xp.empty((w.size + o, chunks), dtype=xp.float64)
    launch(_direct_param_grad_kernel, partial.size, x, code, gy, k, partial)
    sums = partial.sum(axis=1).astype(x.dtype)
    gw, gb = sums[:w.size].reshape(w.shape), sums[w.size:]
    gx = None
    if need_gx:
        gx = xp.empty(x.shape, dtype=x.dtype)
        launch(_direct_input_grad_kernel, gx.size, w, code, gy, x.dtype.type(0), gx)
    return gx, gw, gb
