"""Winograd F(2x2, 3x3) numba kernels for the fused 3x3 conv+bias+ReLU+pool block (wide layers).

A 2x2 max-pool window is exactly one output tile of F(2x2, 3x3): its four conv outputs depend on
the 4x4 input patch d of a zero-bordered copy of the sample (rows 2r..2r+3, columns 2q..2q+3), and

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 4x4 products instead of 2x2x9)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Summed over input channels, each of the 16 transform positions xi = (a, b) is one matrix product
over the tiles T of several stacked samples: M[xi] (T, O) = V[xi] (T, C) @ U[xi] (C, O), with
V = B^T d B per tile and channel and U = G g G^T per kernel (winograd_filters). That is 16 C O
multiply-adds per tile where im2col + BLAS spends 36 C O (four positions x nine taps), and the
pooling reads each window's four outputs straight from the tile: the pre-activation plane is never
laid out. Only the windows' positions are computed (an odd last row or column, which the pool
drops, costs nothing).

The backward pass is the adjoint of the same formula. With dY the window's output gradient (the
pooled gradient at the winner, zero elsewhere) and Mg = A dY A^T per tile and output channel:

    gw[o, c] = G^T [ sum over tiles of V[:, :, c] * Mg[:, :, o] ] G     Wg[xi] (C, O) = V[xi]^T @ Mg[xi]
    gx patch += B [ sum over o of U[:, :, c, o] * Mg[:, :, o] ] B^T      dV[xi] (T, C) = Mg[xi] @ U[xi]^T

the input patches overlapping by two rows and columns, so their gradients are added up. Each thread
works on a fixed index range of the batch and calls BLAS (numba's np.dot) on its own buffers, BLAS
single-threaded meanwhile (block_numba arranges that); per-chunk gradient sums keep results
independent of scheduling.
"""
import numpy as np
from numba import njit, prange

from .numba_direct import window_code
from .numba_gemm import matrix_rows
from .pool_code import RELU_ZERO

# numba's cache is keyed to this file alone; the digests of the files whose code these kernels
# compile in (see numba_direct.CACHE_DEPENDS_ON).
CACHE_DEPENDS_ON = {"numba_direct.py": "b7d30ef5607c0ae5", "numba_gemm.py": "5a7a0e9d1b027035",
                    "pool_code.py": "3021576932a8b343"}

@njit(inline="always")
def _g(g0, g1, g2):
    """G g for one kernel row or column g: (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2), in
    float64 (rounded once, when stored)."""
    a, b, c = np.float64(g0), np.float64(g1), np.float64(g2)
    return a, (a + b + c) * 0.5, (a - b + c) * 0.5, c


@njit(inline="always")
def _gt(x0, x1, x2, x3):
    """G^T x for one 4-vector x (the adjoint of _g): (x0 + (x1 + x2) / 2, (x1 - x2) / 2,
    (x1 + x2) / 2 + x3), in float64."""
    a, b, c, d = np.float64(x0), np.float64(x1), np.float64(x2), np.float64(x3)
    return a + (b + c) * 0.5, (b - c) * 0.5, (b + c) * 0.5 + d


@njit(cache=True)
def winograd_filters(w):
    """u[(a, b), c, o] = (G w[o, c] G^T)[a, b]: the 3x3 kernels w (O, C, 3, 3) in the transform
    domain, as the 16 right factors (C, O) of the tile products. Computed once per call, one input
    channel at a time into a small (16, O) block that is then copied out row by row: storing each
    kernel's 16 values straight into the 16 planes, which lie C*O elements apart (conv5: 8 KiB),
    sent all 16 stores to one L1 set (104 us against 40 for conv5 on the Xeon)."""
    o, c = w.shape[:2]
    u = np.empty((16, c, o), w.dtype)
    block = np.empty((16, o), w.dtype)
    for ci in range(c):
        for oi in range(o):
            g = w[oi, ci]
            # G applied down the three kernel columns, then along each row a of the result
            c0, c1, c2 = _g(g[0, 0], g[1, 0], g[2, 0]), _g(g[0, 1], g[1, 1], g[2, 1]), _g(g[0, 2], g[1, 2], g[2, 2])
            for a in range(4):
                row = _g(c0[a], c1[a], c2[a])
                for b in range(4):
                    block[4 * a + b, oi] = row[b]
        for xi in range(16):
            u[xi, ci] = block[xi]
    return u


@njit(cache=True)
def _weight_gradient(wg, gw):
    """gw (O, C, 3, 3) = G^T Wg[:, :, c, o] G from the transform-domain sums wg (16, C, O) over
    the tiles: the adjoint of winograd_filters."""
    o, c = gw.shape[:2]
    for oi in range(o):
        for ci in range(c):
            # G^T down each of the four transform columns b, then along each kernel row i
            x0 = _gt(wg[0, ci, oi], wg[4, ci, oi], wg[8, ci, oi], wg[12, ci, oi])
            x1 = _gt(wg[1, ci, oi], wg[5, ci, oi], wg[9, ci, oi], wg[13, ci, oi])
            x2 = _gt(wg[2, ci, oi], wg[6, ci, oi], wg[10, ci, oi], wg[14, ci, oi])
            x3 = _gt(wg[3, ci, oi], wg[7, ci, oi], wg[11, ci, oi], wg[15, ci, oi])
            for i in range(3):
                gw[oi, ci, i, 0], gw[oi, ci, i, 1], gw[oi, ci, i, 2] = _gt(x0[i], x1[i], x2[i], x3[i])


# The transforms' vector loops. Each runs `rows` times over n contiguous values: row r of out starts
# at o0 + r*ostep, row r of each input at its offset + r*istep (all arrays flat). One output and two
# or three inputs per loop: LLVM vectorises a loop only when its run-time alias checks are few.

@njit(inline="always")
def _rows_sum(out, o0, ostep, x, x0, y, y0, istep, rows, n):
    """out rows = x rows + y rows."""
    for r in range(rows):
        o, a, b = out[o0 + r * ostep:], x[x0 + r * istep:], y[y0 + r * istep:]
        for i in range(n):
            o[i] = a[i] + b[i]


@njit(inline="always")
def _rows_difference(out, o0, ostep, x, x0, y, y0, istep, rows, n):
    """out rows = x rows - y rows."""
    for r in range(rows):
        o, a, b = out[o0 + r * ostep:], x[x0 + r * istep:], y[y0 + r * istep:]
        for i in range(n):
            o[i] = a[i] - b[i]


@njit(inline="always")
def _rows_add(out, o0, ostep, x, x0, istep, rows, n):
    """out rows += x rows."""
    for r in range(rows):
        o, a = out[o0 + r * ostep:], x[x0 + r * istep:]
        for i in range(n):
            o[i] += a[i]


@njit(inline="always")
def _rows_subtract(out, o0, ostep, x, x0, istep, rows, n):
    """out rows -= x rows."""
    for r in range(rows):
        o, a = out[o0 + r * ostep:], x[x0 + r * istep:]
        for i in range(n):
            o[i] -= a[i]


@njit(inline="always")
def _rows_add_sum_difference(out, o0, ostep, x, x0, y, y0, z, z0, istep, rows, n):
    """out rows += x rows + y rows - z rows."""
    for r in range(rows):
        o, a, b, d = out[o0 + r * ostep:], x[x0 + r * istep:], y[y0 + r * istep:], z[z0 + r * istep:]
        for i in range(n):
            o[i] += a[i] + b[i] - d[i]


@njit(cache=True)
def to_column_parity(xs, xh):
    """xh[r + 1, (q + 1) % 2, (q + 1) // 2, c] = xs[c, r, q]: a zero-bordered channel-last copy of
    one sample (C, H, W) whose padded columns are split by parity, so that the columns 2q + j of
    every window q (j = 0..3) are contiguous runs along (q, c): even columns from q + j // 2 for
    even j, odd columns likewise. xh (H+2, 2, (W+3)//2, C); its unwritten entries stay zero."""
    c, h, wd = xs.shape
    for r in range(h):
        dst = xh[r + 1]
        for ci in range(c):
            src = xs[ci, r]
            for q in range(wd):
                dst[(q + 1) & 1, (q + 1) >> 1, ci] = src[q]


@njit(cache=True)
def _input_tiles(xh, e, v, t0, h2, w2):
    """v[(a, b), t0 + r*w2 + q, :] = (B^T d B)[a, b] for the 4x4 patch d (rows 2r..2r+3, padded
    columns 2q..2q+3) of each pool window (r, q) of one sample, from its column-parity copy xh
    (to_column_parity); per axis B^T d = (d0 - d2, d1 + d2, d2 - d1, d1 - d3). The row transform
    runs along whole padded rows into e (4, H/2 padded rows), then the column transform along
    (q, c) for each window row's windows at once."""
    c = xh.shape[3]
    half = xh.shape[2] * c
    row = 2 * half
    n = w2 * c
    xf = xh.reshape(-1)
    # window row r reads padded rows 2r .. 2r+3: e_a = row i1 -/+ row i2
    _rows_difference(e[0], 0, row, xf, 0, xf, 2 * row, 2 * row, h2, row)
    _rows_sum(e[1], 0, row, xf, row, xf, 2 * row, 2 * row, h2, row)
    _rows_difference(e[2], 0, row, xf, 2 * row, xf, row, 2 * row, h2, row)
    _rows_difference(e[3], 0, row, xf, row, xf, 3 * row, 2 * row, h2, row)
    # columns 2q + j of a row's windows start at: j = 0 even[q] (0), 1 odd[q] (half), 2 even[q + 1]
    # (c), 3 odd[q + 1] (half + c); window row r's outputs at (t0 + r*w2)*c, n apart
    first = t0 * c
    for a in range(4):
        ea = e[a]
        _rows_difference(v[4 * a].reshape(-1), first, n, ea, 0, ea, c, row, h2, n)
        _rows_sum(v[4 * a + 1].reshape(-1), first, n, ea, half, ea, c, row, h2, n)
        _rows_difference(v[4 * a + 2].reshape(-1), first, n, ea, c, ea, half, row, h2, n)
        _rows_difference(v[4 * a + 3].reshape(-1), first, n, ea, half, ea, half + c, row, h2, n)


@njit(cache=True)
def _pool_tiles(m, t0, b, ys, cs):
    """Pool one sample's tiles m[:, t0 + r*w2 + q, :] (16 transform positions x O) into ys/cs
    (O, H/2, W/2): Y = A^T M A, per axis (m0 + m1 + m2, m1 - m2 - m3); the bias is added to each
    of the window's four values before comparing, as the reference does (codes: window_code).
    Vectors run along the output channels."""
    o, h2, w2 = ys.shape
    for r in range(h2):
        for q in range(w2):
            t = t0 + r * w2 + q
            for oi in range(o):
                # rows: z_aj = (A^T M)[a, j]
                z00 = m[0, t, oi] + m[4, t, oi] + m[8, t, oi]
                z01 = m[1, t, oi] + m[5, t, oi] + m[9, t, oi]
                z02 = m[2, t, oi] + m[6, t, oi] + m[10, t, oi]
                z03 = m[3, t, oi] + m[7, t, oi] + m[11, t, oi]
                z10 = m[4, t, oi] - m[8, t, oi] - m[12, t, oi]
                z11 = m[5, t, oi] - m[9, t, oi] - m[13, t, oi]
                z12 = m[6, t, oi] - m[10, t, oi] - m[14, t, oi]
                z13 = m[7, t, oi] - m[11, t, oi] - m[15, t, oi]
                bi = b[oi]
                ys[oi, r, q], cs[oi, r, q] = window_code(z00 + z01 + z02 + bi, z01 - z02 - z03 + bi,
                                                         z10 + z11 + z12 + bi, z11 - z12 - z13 + bi)


def winner_factors(dtype):
    """f[(a, b), code] = A[a, wa] A[b, wb] for the winner's row wa = code >> 1 and column
    wb = code & 1 (A's column 0 is (1, 1, 1, 0), column 1 is (0, 1, -1, -1)); 0 for RELU_ZERO
    (nothing passed). In the gradients' dtype, so _gradient_tiles' products stay in it."""
    columns = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    f = np.zeros((16, RELU_ZERO + 1), dtype)
    for code in range(RELU_ZERO):
        f[:, code] = np.outer(columns[code >> 1], columns[code & 1]).reshape(16)
    return f


@njit(cache=True)
def _gradient_tiles(cs, gs, factors, ct, gt, mg, t0, gb):
    """mg[:, t0 + r*w2 + q, :] = A dY A^T for one sample's windows, and gb (O,) += what passed.

    dY is zero but at the winner, which holds the pooled gradient g, so (A dY A^T)[a, b] =
    g * factors[(a, b), code]. The codes and gradients are first transposed window-major into ct
    and gt (T1, O), so each of the 16 planes is then one contiguous vector loop along (window, o).
    Plane (1, 1) is g itself where the gradient passed and 0 where not: gb sums it."""
    o, h2, w2 = cs.shape
    per = h2 * w2
    cf = cs.reshape((o, per))
    gf = gs.reshape((o, per))
    for oi in range(o):
        for tw in range(per):
            ct[tw, oi] = cf[oi, tw]
            gt[tw, oi] = gf[oi, tw]
    n = per * o
    codes = ct.reshape(-1)[:n]
    grads = gt.reshape(-1)[:n]
    for xi in range(16):
        f0, f1, f2, f3, f4 = factors[xi, 0], factors[xi, 1], factors[xi, 2], factors[xi, 3], factors[xi, 4]
        out = mg[xi].reshape(-1)[t0 * o:t0 * o + n]
        for i in range(n):
            code = codes[i]
            f = f0 if code == 0 else (f1 if code == 1 else (f2 if code == 2 else (f3 if code == 3 else f4)))
            out[i] = grads[i] * f
    passed = mg[5].reshape(-1)[t0 * o:t0 * o + n]
    for tw in range(per):
        for oi in range(o):
            gb[oi] += passed[tw * o + oi]


@njit(cache=True)
def _patch_gradients(dv, f, t0, gh, gxs):
    """gxs (C, H, W) = the adjoint of _input_tiles for one sample: each window's dv[:, t, :] goes
    back through B dV B^T (per axis B e = (e0, e1 - e2 + e3, e1 + e2 - e0, -e3)) and is added into
    its 4x4 patch of gh (the column-parity layout of to_column_parity, zeroed here); patches
    overlap by two rows and columns. The column transform is added into f (4, H/2 padded rows) for
    each window row's windows at once, then the row transform into gh's rows, in the order that
    adds each padded row's two contributions as window row after window row would."""
    c, h, wd = gxs.shape
    h2, w2 = h // 2, wd // 2
    half = gh.shape[2] * c
    row = 2 * half
    n = w2 * c
    first = t0 * c
    f[:] = 0
    for a in range(4):
        d0, d1 = dv[4 * a].reshape(-1), dv[4 * a + 1].reshape(-1)
        d2, d3 = dv[4 * a + 2].reshape(-1), dv[4 * a + 3].reshape(-1)
        fa = f[a]
        # columns 2q + j: j = 0 even[q], 1 odd[q], 2 even[q + 1], 3 odd[q + 1]
        _rows_add(fa, 0, row, d0, first, n, h2, n)
        _rows_add_sum_difference(fa, half, row, d1, first, d3, first, d2, first, n, h2, n)
        _rows_add_sum_difference(fa, c, row, d1, first, d2, first, d0, first, n, h2, n)
        _rows_subtract(fa, half + c, row, d3, first, n, h2, n)
    gh[:] = 0
    ghf = gh.reshape(-1)
    # padded rows 2r + i; row 2r+2 gets window row r's i = 2 before window row r+1's i = 0
    _rows_add_sum_difference(ghf, 2 * row, 2 * row, f[1], 0, f[2], 0, f[0], 0, row, h2, row)
    _rows_subtract(ghf, 3 * row, 2 * row, f[3], 0, row, h2, row)
    _rows_add(ghf, 0, 2 * row, f[0], 0, row, h2, row)
    _rows_add_sum_difference(ghf, row, 2 * row, f[1], 0, f[3], 0, f[2], 0, row, h2, row)
    for ci in range(c):
        for r in range(h):
            for q in range(wd):
                gxs[ci, r, q] = gh[r + 1, (q + 1) & 1, (q + 1) >> 1, ci]


@njit(cache=True)
def _transform_group(x, s0, count, xh, e, v, h2, w2):
    """Input transforms of samples s0 .. s0+count-1 into the rows of v, sample after sample."""
    for s in range(count):
        to_column_parity(x[s0 + s], xh)
        _input_tiles(xh, e, v, s * h2 * w2, h2, w2)


@njit(cache=True, parallel=True)
def winograd_forward(x, u, b, y, code, xh, e, v, m, stack, nchunks):
    """Fused forward into y/code. u (16, C, O) from winograd_filters; per-thread scratch xh
    (nchunks, H+2, 2, (W+3)//2, C) zero-bordered (to_column_parity), e (nchunks, 4, H/2 xh rows),
    v (nchunks, 16, >= stack*T1, C) and m (nchunks, 16, >= stack*T1, O), T1 = (H/2)(W/2)
    windows per sample; `stack` samples share each product M[xi] (tiles, O) = V[xi] (tiles, C)
    @ U[xi] (C, O)."""
    n = x.shape[0]
    _, h2, w2 = y.shape[1:]
    per = h2 * w2
    for t in prange(nchunks):
        end = (t + 1) * n // nchunks
        for s0 in range(t * n // nchunks, end, stack):
            count = min(stack, end - s0)
            rows = count * per
            _transform_group(x, s0, count, xh[t], e[t], v[t], h2, w2)
            for xi in range(16):
                np.dot(matrix_rows(v[t, xi], rows), u[xi], matrix_rows(m[t, xi], rows))
            for s in range(count):
                _pool_tiles(m[t], s * per, b, y[s0 + s], code[s0 + s])


@njit(cache=True, parallel=True)
def winograd_backward(x, u, code, gy, factors, gx, gw_part, gb_part, wg, xh, e, v, mg, dv, gh, ct, gt,
                      prod, stack, nchunks, need_gx):
    """Fused backward. u (16, C, O) from winograd_filters, factors from winner_factors; gw_part
    (nchunks, O, C, 3, 3) and gb_part (nchunks, O) receive per-chunk sums, gw_part through the
    transform-domain sums wg (nchunks, 16, C, O); per-thread scratch xh and gh (nchunks, H+2, 2,
    (W+3)//2, C), e (nchunks, 4, H/2 xh rows), v and dv (nchunks, 16, >= stack*T1, C), mg (nchunks, 16,
    >= stack*T1, O), ct and gt (nchunks, T1, O), prod (nchunks, C, O). Per transform position xi
    and group of tiles: Wg[xi] (C, O) += V[xi]^T @ Mg[xi] and dV[xi] = Mg[xi] @ U[xi]^T."""
    n = x.shape[0]
    _, h2, w2 = gy.shape[1:]
    per = h2 * w2
    for t in prange(nchunks):
        gbp = gb_part[t]
        wg[t] = 0
        gbp[:] = 0
        end = (t + 1) * n // nchunks
        for s0 in range(t * n // nchunks, end, stack):
            count = min(stack, end - s0)
            rows = count * per
            _transform_group(x, s0, count, xh[t], e[t], v[t], h2, w2)
            for s in range(count):
                _gradient_tiles(code[s0 + s], gy[s0 + s], factors, ct[t], gt[t], mg[t], s * per, gbp)
            for xi in range(16):
                np.dot(matrix_rows(v[t, xi], rows).T, matrix_rows(mg[t, xi], rows), prod[t])
                wg[t, xi] += prod[t]
            if need_gx:
                for xi in range(16):
                    np.dot(matrix_rows(mg[t, xi], rows), u[xi].T, matrix_rows(dv[t, xi], rows))
                for s in range(count):
                    _patch_gradients(dv[t], e[t], s * per, gh[t], gx[s0 + s])
        _weight_gradient(wg[t], gw_part[t])
