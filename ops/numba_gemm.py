"""im2col + BLAS numba kernels for the fused conv+bias+ReLU+pool block (wide layers).

Per sample, with cols[(c, i, j), h * W + x] = xpad[c, h + i, x + j] (C*k*k rows, H*W columns):

    pre = [W | b] @ [cols; 1]                 conv + bias, (O, H*W), pooled in place
    gw += G @ cols^T,  gb += sum(G)           G: the pooled gradient scattered to the window winners
    gx  = col2im(W^T @ G)

Each thread works on a fixed index range of the batch and calls BLAS (numba's np.dot) on its own
buffers; BLAS itself must run single-threaded meanwhile (block_numba arranges that), so there is one
thread pool at a time. Per-chunk gw/gb partial sums keep the result independent of scheduling.
"""
import numpy as np
from numba import njit, prange

from .numba_direct import RELU_ZERO, _pool


@njit(cache=True)
def _im2col(xs, pad, cols, k):
    """Fill cols[:C*k*k] from one sample (C, H, W) via its zero-bordered padded copy pad (C, Hp, wp)."""
    c, h, wd = xs.shape
    p = k // 2
    for ci in range(c):
        for r in range(h):
            dst = pad[ci, r + p, p:p + wd]
            src = xs[ci, r]
            for q in range(wd):
                dst[q] = src[q]
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                row = cols[(ci * k + i) * k + j]
                for r in range(h):
                    dst = row[r * wd:(r + 1) * wd]
                    src = pad[ci, r + i, j:j + wd]
                    for q in range(wd):
                        dst[q] = src[q]


@njit(cache=True, parallel=True)
def gemm_forward(x, wb, y, code, xpad, cols, pre, k, nchunks):
    """Fused forward into y/code. wb = [W | b] (O, C*k*k + 1); cols (nchunks, C*k*k + 1, H*W)
    whose last row is ones; xpad (nchunks, C, Hp, wp) zero-bordered; pre (nchunks, O, H*W)."""
    n, _, h, wd = x.shape
    o = wb.shape[0]
    for t in prange(nchunks):
        pr = pre[t]
        for s in range(t * n // nchunks, (t + 1) * n // nchunks):
            _im2col(x[s], xpad[t], cols[t], k)
            np.dot(wb, cols[t], pr)
            for oi in range(o):
                # even conv rows start at 0, odd ones at W; both have stride 2W
                _pool(pr[oi], pr[oi, wd:], 2 * wd, y[s, oi], code[s, oi])


@njit(cache=True)
def _scatter_dense(cs, gs, g, wd):
    """Write the pooled gradient gs into g (H*W, rows of width wd) at the window winners, zero
    elsewhere in the pooled rows; return the sum of the gradients that passed."""
    h2, w2 = cs.shape
    total = 0.0
    for r in range(h2):
        base0 = 2 * r * wd
        g[base0:base0 + 2 * wd] = 0
        crow = cs[r]
        grow = gs[r]
        for q in range(w2):
            c = crow[q]
            v = grow[q] if c < RELU_ZERO else 0.0
            g[base0 + ((c >> 1) & 1) * wd + 2 * q + (c & 1)] = v  # a zeroed window writes 0
            total += v
    return total


@njit(cache=True)
def _col2im(gcols, gxs, pad, k):
    """gxs (C, H, W) = adjoint of _im2col applied to gcols, summed in the padded buffer pad."""
    c, h, wd = gxs.shape
    pad[:] = 0
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                row = gcols[(ci * k + i) * k + j]
                for r in range(h):
                    dst = pad[ci, r + i, j:j + wd]
                    src = row[r * wd:(r + 1) * wd]
                    for q in range(wd):
                        dst[q] += src[q]
    p = k // 2
    for ci in range(c):
        for r in range(h):
            gxs[ci, r, :] = pad[ci, r + p, p:p + wd]


@njit(cache=True, parallel=True)
def gemm_backward(x, wmat, code, gy, gx, gw_part, gb_part, xpad, gxpad, cols, gpre, gcols, tmp,
                  k, nchunks, need_gx):
    """Fused backward. wmat (O, C*k*k); gw_part (nchunks, O, C*k*k) and gb_part (nchunks, O)
    receive per-chunk sums; cols/gcols (nchunks, C*k*k, H*W), gpre (nchunks, O, H*W),
    tmp (nchunks, O, C*k*k) scratch; xpad (nchunks, C, Hp, wp) zero-bordered, gxpad like it."""
    n, _, h, wd = x.shape
    o = wmat.shape[0]
    wt = wmat.T
    for t in prange(nchunks):
        gwp = gw_part[t]
        gbp = gb_part[t]
        gwp[:] = 0
        gbp[:] = 0
        g = gpre[t]
        for s in range(t * n // nchunks, (t + 1) * n // nchunks):
            _im2col(x[s], xpad[t], cols[t], k)
            for oi in range(o):
                gbp[oi] += _scatter_dense(code[s, oi], gy[s, oi], g[oi], wd)
            np.dot(g, cols[t].T, tmp[t])
            gwp += tmp[t]
            if need_gx:
                np.dot(wt, g, gcols[t])
                _col2im(gcols[t], gx[s], gxpad[t], k)
