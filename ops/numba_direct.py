"""Direct-convolution numba kernels for the fused conv+bias+ReLU+pool block (few-channel layers).

Layout. Each zero-padded plane (Hp = H + 2p rows, row stride wp = W + 2p, p = k // 2) is stored as
two flat "parity planes": P[0] holds the even padded rows, P[1] the odd ones. Output rows 2r and 2r+1
(the two rows of pooling window row r) then sit at the SAME flat position t = r * wp + x:

    even[t] = sum_(i,j) w[i, j] * P[i % 2]      [t + (i // 2) * wp + j]
    odd[t]  = sum_(i,j) w[i, j] * P[(i+1) % 2]  [t + ((i+1) // 2) * wp + j]

so one long vector loop over t computes both rows of every window of a block of window rows, and
for k = 3 the two rows share 12 input loads for 18 multiply-adds (the positions between rows are
computed and ignored). The 3x3 loops work on two output channels at once (_taps3_pair): the same
12 input loads then feed 36 multiply-adds, which makes the loops bound by the FMA units rather
than by loads (~90 % of the machine's one-thread sgemm rate in isolation). Those loops load and
store their accumulator rows once per input channel; where the channel counts and the plane allow,
the 3x3 forward and input-gradient passes use numba_tile's tiles instead (four output channels,
Winograd F(2, 3) down the kernel columns with the weights transformed once per call by
winograd_weights, the sums in registers across all input channels, written straight to the
outputs: conv3_tile_pool pools them first, conv3_tile_rows stores them), and the loops serve the
other shapes. The 3x3 weight gradient runs on numba_tile.corr3_tile_pair (two output channels
against one input channel: the same 36 multiply-adds per 12 input loads; a Winograd F(3, 2) form
with 24 needed two calls, as its 24 partial sums and 8 transformed gradients overflowed the
registers, and ran 7 % faster on conv1's long rows but 17-28 % slower on conv4's short ones, so it
was not kept) into vector partial sums that are summed over their lanes once per batch
(gw_from_lanes), not once per sample and channel pair (16 x 16 planes of conv4: ~1.5x faster). The
forward loops pool straight from small per-thread accumulator rows (even/odd rows of two channels):
the pre-pool activation is never written. They load and store those four rows in every iteration, so the caller
places them 1 KiB apart modulo 4 KiB (block_numba._acc_workspace); rows at nearby addresses modulo
4 KiB can halve the loop's speed (4K aliasing).

Backward: the pooled gradient is scattered into padded parity planes G (zero except at the window
winners). Writing gA/gB for the gradient rows 2r/2r+1 at flat position t,

    gw[o, c, i, j] = sum_t gA[t] * P_c[i % 2][t + (i//2) wp + j] + gB[t] * P_c[(i+1) % 2][...]
    gx[c]          = sum_o conv(G_o, w[o, c] flipped in both axes)     (same kernel as forward)

The zero pad columns of G make these flat sums exact. The batch is split into `nchunks` fixed index
ranges, one per thread; gradient sums are kept per chunk, so results do not depend on scheduling.
Loop lengths are rounded up to a multiple of VEC so that no scalar remainder loop runs; buffers
carry that much zero slack. The tiles take flat views of the arrays (reshape(-1): it fails on a
non-contiguous array where numba's ravel would silently copy, and the tiles write through them).
"""
import numpy as np
from numba import njit, prange

from .pixels import input_value
from .numba_tile import (LANES, OUTPUTS, WINDOWS, conv3_tile_pool, conv3_tile_rows, corr3_tile_pair,
                         scatter_windows)
from .pool_code import RELU_ZERO

# numba's on-disk cache of these kernels is keyed to this file alone, yet they compile in code from
# the files below. Each entry is the start of that file's SHA-256, so that a change there must
# change this file too, and the cached kernels are recompiled instead of silently kept
# (tests/test_kernel_cache.py fails until the digest is updated).
CACHE_DEPENDS_ON = {"numba_tile.py": "88976d944a33dad9", "pixels.py": "b0e948425a43e682",
                    "pool_code.py": "3021576932a8b343"}

# Reassociation lets LLVM vectorise the gw reductions; contraction allows FMA. Both keep results
# well within float32 tolerance and are fixed at compile time (deterministic).
FASTMATH = {"reassoc", "contract"}
VEC = LANES  # loop lengths round up to whole vectors, which are also whole tiles
# accumulator rows per thread: even/odd rows of the loop kernels' two output channels
ACC_ROWS = 4


def plane_len(h, wd, k):
    """Flat length of one parity plane (with slack) for an H x W input and a k x k kernel."""
    p = k // 2
    wp = wd + 2 * p
    return ((h + 2 * p + 1) // 2 + 1) * wp + 2 * VEC + k


@njit(cache=True)
def _round_up(n):
    return (n + VEC - 1) // VEC * VEC


@njit(cache=True, fastmath=FASTMATH)
def _taps3(pl, off, n, wp, wk, ev, od):
    """ev/od[t] += the 3x3 convolution rows (see module doc) for t < n, block starting at off."""
    a0 = pl[0, off:off + n + 2]
    b0 = pl[1, off:off + n + 2]
    a1 = pl[0, off + wp:off + wp + n + 2]
    b1 = pl[1, off + wp:off + wp + n + 2]
    w00, w01, w02 = wk[0, 0], wk[0, 1], wk[0, 2]
    w10, w11, w12 = wk[1, 0], wk[1, 1], wk[1, 2]
    w20, w21, w22 = wk[2, 0], wk[2, 1], wk[2, 2]
    for t in range(n):
        # Both sums before either store: a store to ev could alias pl for LLVM, which would then
        # load the shared rows b0 and a1 twice.
        e = ev[t] + ((w00 * a0[t] + w01 * a0[t + 1] + w02 * a0[t + 2])
                     + (w10 * b0[t] + w11 * b0[t + 1] + w12 * b0[t + 2])
                     + (w20 * a1[t] + w21 * a1[t + 1] + w22 * a1[t + 2]))
        d = od[t] + ((w00 * b0[t] + w01 * b0[t + 1] + w02 * b0[t + 2])
                     + (w10 * a1[t] + w11 * a1[t + 1] + w12 * a1[t + 2])
                     + (w20 * b1[t] + w21 * b1[t + 1] + w22 * b1[t + 2]))
        ev[t] = e
        od[t] = d


@njit(cache=True, fastmath=FASTMATH)
def _taps3_pair(pl, off, n, wp, wk, wl, ev, od, ev2, od2):
    """_taps3 for two kernels at once (two output channels): the 12 input loads per vector are
    shared by 36 multiply-adds instead of 18, which is what bounds the single-kernel loop."""
    a0 = pl[0, off:off + n + 2]
    b0 = pl[1, off:off + n + 2]
    a1 = pl[0, off + wp:off + wp + n + 2]
    b1 = pl[1, off + wp:off + wp + n + 2]
    w00, w01, w02 = wk[0, 0], wk[0, 1], wk[0, 2]
    w10, w11, w12 = wk[1, 0], wk[1, 1], wk[1, 2]
    w20, w21, w22 = wk[2, 0], wk[2, 1], wk[2, 2]
    v00, v01, v02 = wl[0, 0], wl[0, 1], wl[0, 2]
    v10, v11, v12 = wl[1, 0], wl[1, 1], wl[1, 2]
    v20, v21, v22 = wl[2, 0], wl[2, 1], wl[2, 2]
    for t in range(n):
        p0, p1, p2 = a0[t], a0[t + 1], a0[t + 2]
        q0, q1, q2 = b0[t], b0[t + 1], b0[t + 2]
        r0, r1, r2 = a1[t], a1[t + 1], a1[t + 2]
        s0, s1, s2 = b1[t], b1[t + 1], b1[t + 2]
        e = ev[t] + ((w00 * p0 + w01 * p1 + w02 * p2) + (w10 * q0 + w11 * q1 + w12 * q2)
                     + (w20 * r0 + w21 * r1 + w22 * r2))
        d = od[t] + ((w00 * q0 + w01 * q1 + w02 * q2) + (w10 * r0 + w11 * r1 + w12 * r2)
                     + (w20 * s0 + w21 * s1 + w22 * s2))
        e2 = ev2[t] + ((v00 * p0 + v01 * p1 + v02 * p2) + (v10 * q0 + v11 * q1 + v12 * q2)
                       + (v20 * r0 + v21 * r1 + v22 * r2))
        d2 = od2[t] + ((v00 * q0 + v01 * q1 + v02 * q2) + (v10 * r0 + v11 * r1 + v12 * r2)
                       + (v20 * s0 + v21 * s1 + v22 * s2))
        ev[t] = e
        od[t] = d
        ev2[t] = e2
        od2[t] = d2


@njit(cache=True, fastmath=FASTMATH)
def _taps_any(pl, off, n, wp, wk, ev, od):
    """Same as _taps3 for any odd k: one vector pass per tap and output row."""
    k = wk.shape[0]
    for i in range(k):
        for j in range(k):
            wv = wk[i, j]
            se = pl[i % 2, off + (i // 2) * wp + j:off + (i // 2) * wp + j + n]
            so = pl[(i + 1) % 2, off + ((i + 1) // 2) * wp + j:off + ((i + 1) // 2) * wp + j + n]
            for t in range(n):
                ev[t] += wv * se[t]
            for t in range(n):
                od[t] += wv * so[t]


@njit(cache=True, fastmath=FASTMATH)
def _accumulate(pl, off, n, wp, wk, ev, od):
    """Add one input channel's contribution (kernel wk) to the even/odd output rows."""
    if wk.shape[0] == 3:
        _taps3(pl, off, n, wp, wk, ev, od)
    else:
        _taps_any(pl, off, n, wp, wk, ev, od)


@njit(cache=True, fastmath=FASTMATH)
def _corr3(ga, gb, pl, off, n, wp, out):
    """out[i, j] += the 3x3 weight-gradient sums (see module doc) over t < n: nine reductions."""
    # Column shifts 1 and 2, read from the (runtime) shape: with literal shifts LLVM rebuilds the
    # overlapping loads from the previous vector by shuffles and spills, 1.7x slower.
    d1 = out.shape[1] - 2
    d2 = 2 * d1
    a0, a0_1, a0_2 = pl[0, off:off + n], pl[0, off + d1:off + d1 + n], pl[0, off + d2:off + d2 + n]
    b0, b0_1, b0_2 = pl[1, off:off + n], pl[1, off + d1:off + d1 + n], pl[1, off + d2:off + d2 + n]
    o = off + wp
    a1, a1_1, a1_2 = pl[0, o:o + n], pl[0, o + d1:o + d1 + n], pl[0, o + d2:o + d2 + n]
    b1, b1_1, b1_2 = pl[1, o:o + n], pl[1, o + d1:o + d1 + n], pl[1, o + d2:o + d2 + n]
    # Starting from out's own entries keeps the accumulators in the data's precision.
    s00, s01, s02 = out[0, 0], out[0, 1], out[0, 2]
    s10, s11, s12 = out[1, 0], out[1, 1], out[1, 2]
    s20, s21, s22 = out[2, 0], out[2, 1], out[2, 2]
    for t in range(n):
        u = ga[t]
        v = gb[t]
        s00 += u * a0[t] + v * b0[t]
        s01 += u * a0_1[t] + v * b0_1[t]
        s02 += u * a0_2[t] + v * b0_2[t]
        s10 += u * b0[t] + v * a1[t]
        s11 += u * b0_1[t] + v * a1_1[t]
        s12 += u * b0_2[t] + v * a1_2[t]
        s20 += u * a1[t] + v * b1[t]
        s21 += u * a1_1[t] + v * b1_1[t]
        s22 += u * a1_2[t] + v * b1_2[t]
    out[0, 0], out[0, 1], out[0, 2] = s00, s01, s02
    out[1, 0], out[1, 1], out[1, 2] = s10, s11, s12
    out[2, 0], out[2, 1], out[2, 2] = s20, s21, s22


@njit(cache=True, fastmath=FASTMATH)
def _corr_any(ga, gb, pl, off, n, wp, out):
    """Same as _corr3 for any odd k: one reduction pass per tap."""
    k = out.shape[0]
    for i in range(k):
        for j in range(k):
            se = pl[i % 2, off + (i // 2) * wp + j:off + (i // 2) * wp + j + n]
            so = pl[(i + 1) % 2, off + ((i + 1) // 2) * wp + j:off + ((i + 1) // 2) * wp + j + n]
            s = out[i, j]
            for t in range(n):
                s += ga[t] * se[t] + gb[t] * so[t]
            out[i, j] = s


@njit(cache=True, fastmath=FASTMATH)
def _correlate(ga, gb, pl, off, n, wp, out):
    """Add one (output, input) channel pair's weight gradient over a block to out (k, k)."""
    if out.shape[0] == 3:
        _corr3(ga, gb, pl, off, n, wp, out)
    else:
        _corr_any(ga, gb, pl, off, n, wp, out)


@njit(cache=True)
def _to_parity(xs, pad, p, wp):
    """Copy one sample (C, H, W) into the interior of its zero-padded parity planes (C, 2, L);
    uint8 pixels are divided by 255 on the way (ops/pixels.py)."""
    c, h, wd = xs.shape
    for ci in range(c):
        for r in range(h):
            m = r + p  # padded row
            base = (m // 2) * wp + p
            dst = pad[ci, m % 2, base:base + wd]
            src = xs[ci, r]
            for q in range(wd):
                dst[q] = input_value(src[q], dst)


@njit(inline="always")  # inlined into its (cached) callers: no cache of its own
def window_code(v0, v1, v2, v3):
    """(pooled value, code) of one 2x2 window (v0 v1 / v2 v3) after ReLU.

    code = first index of the window maximum (row-major), or RELU_ZERO (value 0) when it is <= 0.
    The first maximum of (v0, v1, v2, v3) is the first maximum of the better pair, the first pair
    winning ties; written with selects only, so no unpredictable branches.
    """
    up = v1 > v0
    m01 = v1 if up else v0
    c01 = 1 if up else 0
    dn = v3 > v2
    m23 = v3 if dn else v2
    c23 = 3 if dn else 2
    low = m23 > m01
    m = m23 if low else m01
    c = c23 if low else c01
    passed = m > 0
    return (m if passed else 0.0), (c if passed else RELU_ZERO)


@njit(cache=True)
def _pool(ev, od, wp, ys, cs):
    """Pool window rows from the even/odd conv rows (bias included) into ys/cs (rows, W/2) with
    window_code."""
    nr, w2 = ys.shape
    for rr in range(nr):
        r0 = ev[rr * wp:rr * wp + 2 * w2]
        r1 = od[rr * wp:rr * wp + 2 * w2]
        yrow = ys[rr]
        crow = cs[rr]
        for q in range(w2):
            yrow[q], crow[q] = window_code(r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1])


@njit(cache=True, fastmath=FASTMATH)
def forward_sample(xs, w, wino, b, ys, cs, pad, acc, block):
    """Fused forward of one sample xs (C, H, W) into ys/cs (O, H/2, W/2); wino = winograd_weights(w)
    for the tiles. pad (C, 2, plane_len) with zero slack, acc (ACC_ROWS, >= block * wp + VEC)
    accumulator rows; `block` = window rows per pass."""
    c, h, wd = xs.shape
    o, k = w.shape[0], w.shape[2]
    p = k // 2
    wp = wd + 2 * p
    h2, w2 = ys.shape[1], ys.shape[2]
    _to_parity(xs, pad, p, wp)
    tiled = pools_in_tile(o, k, wp, w2)
    step = OUTPUTS if tiled else 2 if k == 3 else 1  # output channels per pass
    for r0 in range(0, h2, block):
        nr = min(block, h2 - r0)
        ln = _round_up((nr - 1) * wp + 2 * w2)
        for oi in range(0, o, step):
            if tiled:
                _pooled_tiles(pad, r0, nr, ln, wp, wino, oi, b, ys, cs)
            else:
                _loop_pass(pad, r0 * wp, ln, wp, w, oi, b, acc)
                for u in range(min(step, o - oi)):
                    _pool(acc[2 * u], acc[2 * u + 1], wp, ys[oi + u, r0:r0 + nr], cs[oi + u, r0:r0 + nr])


@njit(cache=True)
def winograd_weights(w):
    """The tiles' weights (numba_tile._tile_sums): for kernel column g = w[o, c, :, j] its Winograd
    F(2, 3) transform (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2) at u[o // 4, c, o % 4, j], so
    that the 4 x 3 x 4 weights a tile (four output channels) takes from one input channel lie
    together. Computed once per call for the whole batch; only whole groups of four output channels
    (the tiles run only when O is a multiple of 4), and (0, C, 4, 3, 4) for kernels that are not
    3 x 3 (only 3 x 3 kernels run on the tiles)."""
    o, c = (w.shape[0], w.shape[1]) if w.shape[2] == 3 else (0, w.shape[1])
    u = np.empty((o // OUTPUTS, c, OUTPUTS, 3, 4), w.dtype)
    for oi in range(o // OUTPUTS * OUTPUTS):
        for ci in range(c):
            for j in range(3):
                g0, g1, g2 = w[oi, ci, 0, j], w[oi, ci, 1, j], w[oi, ci, 2, j]
                v = u[oi // OUTPUTS, ci, oi % OUTPUTS, j]
                v[0] = g0
                v[1] = (g0 + g1 + g2) * 0.5
                v[2] = (g0 - g1 + g2) * 0.5
                v[3] = g2
    return u


@njit(cache=True)
def pools_in_tile(o, k, wp, w2):
    """Whether the forward pass of O output channels, a k x k kernel, padded row stride wp and W/2
    windows per row runs on numba_tile.conv3_tile_pool: 4 channels per tile; it pools 16 positions
    into 8 windows, so every window row must start at an even position, and a tile's 8 windows must
    span at most two rows."""
    return k == 3 and o % OUTPUTS == 0 and wp % 2 == 0 and w2 + 1 >= WINDOWS


@njit(cache=True, fastmath=FASTMATH)
def _pooled_tiles(pad, r0, nr, ln, wp, wino, oi, init, ys, cs):
    """Window rows r0 .. r0 + nr of output channels oi .. oi + 3 (conv + init, pooled in registers by
    numba_tile.conv3_tile_pool) into ys/cs (O, H/2, W/2), from the ln flat positions of the pass.

    The pass's flat position 2m is window slot m; row rr has wp / 2 = W/2 + 1 slots, the last one
    over the pad columns. So slot m is window (rr, m - rr * slots): each tile's 8 slots map to at
    most two runs of consecutive outputs, which the two masks select."""
    h2, w2 = ys.shape[1], ys.shape[2]
    slots = wp // 2
    planes = pad.reshape(-1)
    weights = wino.reshape(-1)
    values = ys.reshape(-1)
    codes = cs.reshape(-1)
    full = (1 << WINDOWS) - 1
    for t0 in range(0, ln, LANES):
        m0 = t0 // 2
        rr = m0 // slots
        q0 = m0 - rr * slots  # window column of the tile's first slot
        first_mask = (1 << max(0, min(WINDOWS, w2 - q0))) - 1  # slots of row rr before its pad slot
        split = slots - q0  # the tile's first slot in row rr + 1
        second_mask = full & ~((1 << split) - 1) if split < WINDOWS and rr + 1 < nr else 0
        row = (r0 + rr) * w2
        conv3_tile_pool(planes, r0 * wp + t0, wp, pad.shape[2], pad.shape[0], weights, oi, init, values, codes,
                        h2 * w2, row + q0, first_mask, row + w2 + q0 - slots, second_mask)


@njit(cache=True)
def gradient_in_tile(c, k, wp):
    """Whether the input gradient of C input channels, a k x k kernel and padded row stride wp runs
    on numba_tile.conv3_tile_rows: 4 channels per tile, and a tile's 16 positions must span at most
    two row pairs."""
    return k == 3 and c % OUTPUTS == 0 and wp >= LANES


@njit(cache=True, fastmath=FASTMATH)
def _gradient_tiles(gp, r0, nr, ln, wp, wino_flip, ci, zeros, gxs):
    """Row pairs r0 .. r0 + nr of the input gradient's channels ci .. ci + 3 (G convolved with the
    flipped kernels, numba_tile.conv3_tile_rows) straight into gxs (C, H, W), from the ln flat
    positions of the pass.

    Flat position m of the pass is column m - rr * wp of row pair rr (rows 2(r0 + rr) and one below,
    which an odd H lacks at its end); columns W and W + 1 lie over the pad. With wp >= 16 a tile's
    16 positions fall in at most two row pairs, which the two pairs of masks select."""
    h, wd = gxs.shape[1], gxs.shape[2]
    planes = gp.reshape(-1)
    weights = wino_flip.reshape(-1)
    out = gxs.reshape(-1)
    for t0 in range(0, ln, LANES):
        rr = t0 // wp
        x0 = t0 - rr * wp  # column of the tile's first position
        row = 2 * (r0 + rr)
        first_even = (1 << max(0, min(LANES, wd - x0))) - 1
        first_odd = first_even if row + 1 < h else 0
        split = wp - x0  # the tile's first position in row pair rr + 1
        second_even = 0
        if split < LANES and rr + 1 < nr:
            second_even = ((1 << min(LANES, split + wd)) - 1) & ~((1 << split) - 1)
        second_odd = second_even if row + 3 < h else 0
        conv3_tile_rows(planes, r0 * wp + t0, wp, gp.shape[2], gp.shape[0], weights, ci, zeros, out, h * wd, wd,
                        row * wd + x0, first_even, first_odd, (row + 2) * wd + x0 - wp, second_even, second_odd)


@njit(cache=True, fastmath=FASTMATH)
def _loop_pass(pad, off, ln, wp, w, oi, init, acc):
    """acc rows 0/1 (and 2/3 for a 3x3 pair) = output channel oi's (and oi + 1's) even/odd rows
    over ln flat positions from off, with the loop kernels (shapes the tile does not take)."""
    c, o, k = pad.shape[0], w.shape[0], w.shape[2]
    ev, od, ev2, od2 = acc[0], acc[1], acc[2], acc[3]
    ev[:ln] = init[oi]
    od[:ln] = init[oi]
    if oi + 1 < o and k == 3:
        ev2[:ln] = init[oi + 1]
        od2[:ln] = init[oi + 1]
        for ci in range(c):
            _taps3_pair(pad[ci], off, ln, wp, w[oi, ci], w[oi + 1, ci], ev, od, ev2, od2)
    else:
        for ci in range(c):
            _accumulate(pad[ci], off, ln, wp, w[oi, ci], ev, od)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def direct_forward(x, w, wino, b, y, code, xpad, acc, block, nchunks):
    """Fused forward into y/code, sample by sample on nchunks threads. xpad (nchunks, C, 2,
    plane_len), acc (nchunks, ACC_ROWS, >= block * wp + VEC): per-thread scratch (forward_sample)."""
    n = x.shape[0]
    for t in prange(nchunks):
        for s in range(t * n // nchunks, (t + 1) * n // nchunks):
            forward_sample(x[s], w, wino, b, y[s], code[s], xpad[t], acc[t], block)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def stack_forward(x, rows, ws, winos, bs, ys, codes, xpads, accs, blocks, nchunks, keep):
    """Forward of several direct blocks in a row, each sample through all of them before the next:
    block i reads sample s's output of block i-1 while it is still in this core's cache, where the
    layer-by-layer order reads it back from memory for the whole batch. Sample s's input is
    x[rows[s]] (x may be the whole dataset: the batch is never copied out). Per block i: weights ws[i]
    and winos[i] = winograd_weights(ws[i]), biases bs[i], outputs ys[i]/codes[i] (N, O_i, H_i/2,
    W_i/2), scratch xpads[i]/accs[i] and blocks[i] as for direct_forward. The same sums as
    direct_forward block by block (bitwise). Without `keep` (no backward to come) only the last
    block's ys is for the whole batch: the other outputs and every codes array have one row per
    thread (nchunks, ...), overwritten sample after sample, so they never leave the cache."""
    n = rows.shape[0]
    for t in prange(nchunks):
        for s in range(t * n // nchunks, (t + 1) * n // nchunks):
            if keep:
                _stack_sample(x[rows[s]], s, s, t, ws, winos, bs, ys, codes, xpads, accs, blocks)
            else:
                _stack_sample(x[rows[s]], s, t, t, ws, winos, bs, ys, codes, xpads, accs, blocks)


@njit(cache=True, fastmath=FASTMATH)
def _stack_sample(xs, s, r, t, ws, winos, bs, ys, codes, xpads, accs, blocks):
    """Sample s (input xs) through every block of stack_forward on thread t: the last block's output
    goes to row s, the other outputs and the codes to row r (s, or t for per-thread scratch)."""
    last = len(ws) - 1
    forward_sample(xs, ws[0], winos[0], bs[0], ys[0][r], codes[0][r], xpads[0][t], accs[0][t], blocks[0])
    for i in range(1, last):
        forward_sample(ys[i - 1][r], ws[i], winos[i], bs[i], ys[i][r], codes[i][r], xpads[i][t], accs[i][t], blocks[i])
    forward_sample(ys[last - 1][r], ws[last], winos[last], bs[last], ys[last][s], codes[last][r], xpads[last][t],
                   accs[last][t], blocks[last])


@njit(cache=True)
def _unpack_rows(ev, od, wp, r0, nr, g):
    """Copy row pairs r0 .. r0 + nr of the even/odd flat rows into the plane g (H, W). (Element
    loops: numba's array-to-slice assignment checks the two for overlap and ran 2-3x slower.)"""
    h, wd = g.shape
    for rr in range(nr):
        _copy_row(ev[rr * wp:rr * wp + wd], g[2 * (r0 + rr)])
        if 2 * (r0 + rr) + 1 < h:
            _copy_row(od[rr * wp:rr * wp + wd], g[2 * (r0 + rr) + 1])


@njit(inline="always")  # inlined into its (cached) caller: no cache of its own
def _copy_row(src, dst):
    """dst[:] = src[:] for two equally long rows."""
    for q in range(dst.shape[0]):
        dst[q] = src[q]


@njit(cache=True, fastmath=FASTMATH)
def _scatter(cs, gs, gp, p, wp):
    """Write the pooled gradient gs to the window winners of the padded parity planes gp (zeros
    elsewhere; all four zero under RELU_ZERO), numba_tile.scatter_windows 16 windows at a time;
    return the sum of the gradients that passed."""
    h2, w2 = cs.shape
    plen = gp.shape[1]
    codes = cs.reshape(-1)
    grads = gs.reshape(-1)
    planes = gp.reshape(-1)
    for r in range(h2):
        m0 = 2 * r + p  # padded rows of the window
        m1 = m0 + 1
        upper = (m0 % 2) * plen + (m0 // 2) * wp + p
        lower = (m1 % 2) * plen + (m1 // 2) * wp + p
        for q0 in range(0, w2, LANES):
            scatter_windows(codes, grads, r * w2 + q0, min(LANES, w2 - q0), planes, upper + 2 * q0, lower + 2 * q0)
    total = 0.0
    for i in range(codes.shape[0]):
        total += grads[i] if codes[i] < RELU_ZERO else 0.0
    return total


@njit(cache=True, fastmath=FASTMATH)
def backward_sample(xs, wflip, wino_flip, cs, gys, gxs, gwp, gw_lanes, gbp, pad, gp, acc, gx_block, gw_len, need_gx):
    """Fused backward of one sample: adds its weight and bias gradients to gwp (O, C, k, k) and gbp
    (O,) (for k = 3 and pairs of output channels, to the vector partial sums gw_lanes (O * C * 9 *
    LANES,) instead: gw_from_lanes adds those to gwp once per batch), writes its input gradient to gxs
    (C, H, W) when need_gx. wflip[c, o] = w[o, c] flipped in both axes, wino_flip =
    winograd_weights(wflip) for the tiles; pad/gp (C or O, 2, plane_len) with zero slack; acc
    (ACC_ROWS, >= gx_block * wp + VEC); gx_block = gx row pairs per pass; gw_len = flat positions
    per weight-gradient pass."""
    c, h, wd = xs.shape
    o, k = wflip.shape[1], wflip.shape[2]
    p = k // 2
    wp = wd + 2 * p
    h2, w2 = gys.shape[1], gys.shape[2]
    total = (h2 - 1) * wp + 2 * w2  # flat extent of the window rows that carry gradient
    # gA/gB: where gradient rows 2r and 2r+1 sit in G (padded rows 2r+p, 2r+1+p, column +p)
    pa, oa = p % 2, (p // 2) * wp + p
    pb, ob = (p + 1) % 2, ((p + 1) // 2) * wp + p
    hh = (h + 1) // 2  # gx row pairs
    plen = pad.shape[2]
    planes = pad.reshape(-1)
    grads = gp.reshape(-1)
    sums = 9 * LANES  # one (output, input) channel pair's partial sums in gw_lanes
    step = 2 if k == 3 else 1  # output channels per weight-gradient pass
    _to_parity(xs, pad, p, wp)
    for oi in range(o):
        gbp[oi] += _scatter(cs[oi], gys[oi], gp[oi], p, wp)
    for start in range(0, total, gw_len):
        ln = _round_up(min(gw_len, total - start))
        for oi in range(0, o, step):
            if step == 2 and oi + 1 < o:
                upper = (2 * oi + pa) * plen + oa + start
                lower = (2 * oi + pb) * plen + ob + start
                for ci in range(c):
                    corr3_tile_pair(grads, upper, lower, 2 * plen, planes, 2 * ci * plen + start, wp, plen, ln,
                                    gw_lanes, (oi * c + ci) * sums, c * sums)
            else:
                ga = gp[oi, pa, oa + start:oa + start + ln]
                gb = gp[oi, pb, ob + start:ob + start + ln]
                for ci in range(c):
                    _correlate(ga, gb, pad[ci], start, ln, wp, gwp[oi, ci])
    if need_gx:
        tiled = gradient_in_tile(c, k, wp)
        gx_step = OUTPUTS if tiled else 2 if k == 3 else 1  # input channels per pass
        zeros = np.zeros(c, gp.dtype)
        for r0 in range(0, hh, gx_block):
            nr = min(gx_block, hh - r0)
            ln = _round_up((nr - 1) * wp + wd)
            for ci in range(0, c, gx_step):
                # the input gradient is the forward convolution of G with the flipped kernels
                if tiled:
                    _gradient_tiles(gp, r0, nr, ln, wp, wino_flip, ci, zeros, gxs)
                else:
                    _loop_pass(gp, r0 * wp, ln, wp, wflip, ci, zeros, acc)
                    for u in range(min(gx_step, c - ci)):
                        _unpack_rows(acc[2 * u], acc[2 * u + 1], wp, r0, nr, gxs[ci + u])


@njit(cache=True)
def gw_from_lanes(gw_lanes, gwp):
    """Add the weight-gradient partial sums gw_lanes (O * C * 9 * LANES,) of corr3_tile_pair to gwp
    (O, C, 3, 3), each entry the sum of its LANES lanes (in lane order), and zero them."""
    flat = gwp.reshape(-1)
    for e in range(flat.shape[0]):
        lanes = gw_lanes[e * LANES:(e + 1) * LANES]
        total = flat[e]
        for u in range(LANES):
            total += lanes[u]
        flat[e] = total
    gw_lanes[:] = 0


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def direct_backward(x, wflip, wino_flip, code, gy, gx, gw_part, gw_lanes, gb_part, xpad, gpad, acc, gx_block, gw_len,
                    nchunks, need_gx):
    """Fused backward, sample by sample on nchunks threads: gw_part/gb_part (nchunks, ...) receive
    per-chunk sums (so results do not depend on scheduling); gw_lanes (nchunks, O * C * 9 * LANES),
    zero on entry and on return, holds the chunks' weight-gradient partial sums in between;
    xpad/gpad/acc per-thread scratch and gx_block/gw_len as for backward_sample; gx is written when
    need_gx."""
    n = x.shape[0]
    for t in prange(nchunks):
        gw_part[t][:] = 0
        gb_part[t][:] = 0
        for s in range(t * n // nchunks, (t + 1) * n // nchunks):
            gxs = gx[s] if need_gx else gy[s]  # (gy[s] stands in, unwritten, without need_gx)
            backward_sample(x[s], wflip, wino_flip, code[s], gy[s], gxs, gw_part[t], gw_lanes[t], gb_part[t], xpad[t],
                            gpad[t], acc[t], gx_block, gw_len, need_gx)
        if wflip.shape[2] == 3:
            gw_from_lanes(gw_lanes[t], gw_part[t])


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def stack_backward(x, rows, wflips, wino_flips, codes, ys, gy, gx, gw_parts, gw_lanes, gb_parts, xpads, gpads, accs,
                   gscratch, gx_blocks, gw_lens, nchunks, need_gx):
    """Backward of the blocks of stack_forward, each sample from the last block down to the first
    before the next sample: the input gradient of block i is block i-1's output gradient, and it
    stays in this thread's gscratch[i-1] (O_{i-1}, H_i, W_i) instead of going through memory for
    the whole batch. ys[i] is block i's output (block i+1's input), gy the last block's output
    gradient; per block, gw_parts[i]/gb_parts[i] receive per-chunk sums and the rest (gw_lanes[i]
    included) is as for direct_backward. Sample s's input is x[rows[s]], as in stack_forward; gx (the
    first block's input gradient, one row per sample) is written when need_gx. Two blocks or more,
    all 3x3 (gscratch has one entry per block but the last)."""
    n = rows.shape[0]
    last = len(wflips) - 1
    for t in prange(nchunks):
        for i in range(last + 1):
            gw_parts[i][t][:] = 0
            gb_parts[i][t][:] = 0
        for s in range(t * n // nchunks, (t + 1) * n // nchunks):
            for i in range(last, 0, -1):
                gys = gy[s] if i == last else gscratch[i][t]
                backward_sample(ys[i - 1][s], wflips[i], wino_flips[i], codes[i][s], gys, gscratch[i - 1][t],
                                gw_parts[i][t], gw_lanes[i][t], gb_parts[i][t], xpads[i][t], gpads[i][t], accs[i][t],
                                gx_blocks[i], gw_lens[i], True)
            gxs = gx[s] if need_gx else gscratch[0][t]  # (stands in, unwritten, without need_gx)
            backward_sample(x[rows[s]], wflips[0], wino_flips[0], codes[0][s], gscratch[0][t], gxs, gw_parts[0][t],
                            gw_lanes[0][t], gb_parts[0][t], xpads[0][t], gpads[0][t], accs[0][t], gx_blocks[0],
                            gw_lens[0], need_gx)
        for i in range(last + 1):
            gw_from_lanes(gw_lanes[i][t], gw_parts[i][t])
