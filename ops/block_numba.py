"""Fast CPU path of the fused VGG block (conv + bias + ReLU + 2x2 max-pool), built on numba.

Same contract as ops.block.conv_relu_pool_reference / conv_relu_pool_backward_reference. Layers with
few input channels use the direct kernels of numba_direct.py; wide layers use BLAS, which only pays
once its matrices are large enough (see GEMM_MIN_CHANNELS), except where the direct kernels' tile
makes them faster at any width (forward_is_direct, backward_is_direct). On BLAS, 3x3 kernels take
Winograd F(2x2, 3x3) tiles (numba_winograd.py: a pool window is one tile, 16 multiply-adds per
window and channel pair where im2col takes 36; the study's conv5 at batch 256 on one thread, forward
/ backward ~4-6 / ~10-15 ms against ~7-10 / ~15-25 ms for im2col on a noisy host), other sizes
im2col + BLAS (numba_gemm.py).
Work is split over the batch into one fixed index range per numba thread; per-thread scratch
buffers are kept between calls, keyed by shape and dtype.
"""
import time

import numba
import numpy as np

from . import numba_blas, numba_direct, numba_gemm, numba_winograd
from .pixels import PixelRows, gathered, is_pixels, pixels_to_float

# Flat elements of one block of output rows: small enough for the accumulator and the input rows it
# reads to stay in L1/L2, long enough to keep the vector loop busy.
BLOCK_ELEMS = 2048

# From this many input channels on, im2col + BLAS beats the direct kernels (one thread, batch 32,
# forward / backward GFLOP/s: at 8 channels, 32x32 planes, direct 64 / 56 against im2col 39 / 19; at
# 16 channels, 16x16 planes, direct 44 / 24 against im2col 56 / 53).
GEMM_MIN_CHANNELS = 16

# From GEMM_MIN_CHANNELS on, the backward pass stays on the direct kernels while a plane has at
# least this many positions per input channel (one thread, 64 samples, direct / im2col ms: 16 ch.
# 16x16 5.6 / 6.5, 16 ch. 32x32 14.2 / 21.6, 32 ch. 32x32 55.8 / 63.1 against 16 ch. 12x12
# 4.6 / 4.3, 32 ch. 16x16 20.3 / 18.8, 64 ch. 16x16 70.5 / 63.6). Measured when the weight
# gradient's loops reduced their sums once per sample, which short planes paid for; its tile
# (numba_tile.corr3_tile_pair) reduces them once per batch, so the rule may now be conservative
# for the shapes below it (not remeasured: the study's conv4 is direct either way).
DIRECT_BACKWARD_POSITIONS = 16

# Target rows (output positions) of one im2col GEMM: several samples of a small plane are stacked
# until about this many, so BLAS gets a long enough dimension (bench/kernel_peak_gemm.py).
GEMM_ROWS = 512

# Target pool windows (Winograd tiles) of one F(2x2, 3x3) product: samples are stacked until about
# this many, as GEMM_ROWS does for im2col. Training steps of the study's net, conv5 on Winograd
# against im2col, paired call by call on a noisy host (speed-up at 1 thread bs 32 / 256, 2 threads
# bs 32 / 256): 64 windows 1.04 / 1.08 / 1.04 / 1.09, 128 1.04 / 1.15 / 1.04 / 1.08, 256 1.04 /
# 1.16 / 1.03 / 1.07, 512 0.98 / 0.99 / 1.03 / 0.95 (its 3 MB of transform planes per thread
# leave the 2 MB L2).
WINOGRAD_TILES = 128

# The direct kernels take uint8 pixels as input and divide them by 255 while copying them into
# their padded planes (ops/pixels.py); the im2col path converts them first.
READS_PIXELS = True
# Runs several direct blocks sample by sample (stack_forward / stack_backward).
STACKS = True

_workspaces = {}


class BlockShapeError(ValueError):
    """Raised when the arrays given to the fused block do not fit together."""


def _workspace(name, shape, dtype):
    """A zero-initialised scratch buffer reused by every call with the same name, shape and dtype.

    Callers rely on regions they never write staying zero (the padding borders), so the name must
    pin down which regions those are: padded planes are named with their image size, as two sizes
    can share a plane length but not its pad columns (9 x 14 and 12 x 12 both take 147)."""
    key = (name, shape, np.dtype(dtype).str)
    buf = _workspaces.get(key)
    if buf is None:
        buf = np.zeros(shape, dtype)
        _workspaces[key] = buf
    return buf


def _acc_workspace(name, nch, length, dtype):
    """The direct loop kernels' accumulator rows: (nch, ACC_ROWS, stride) with stride >= length,
    rows 1 KiB apart modulo 4 KiB from a 4 KiB-aligned start.

    The loops load and store all four rows of a chunk in every iteration. x86 cores first match a
    load against earlier stores by the low 12 address bits, so a row whose address is slightly
    behind another's modulo 4 KiB waits on stores it does not depend on ("4K aliasing"); with
    unlucky strides that halved the pair loops' speed here (measured 31 vs 86 GFLOP/s on one Zen 4
    core). 1 KiB spacing keeps the rows far apart."""
    item = np.dtype(dtype).itemsize
    rows = numba_direct.ACC_ROWS
    page, quarter = 4096 // item, 1024 // item
    stride = -(-length // page) * page + quarter
    buf = _workspace(name, (nch * rows * stride + page,), dtype)
    start = (-(buf.ctypes.data // item)) % page
    return buf[start:start + nch * rows * stride].reshape(nch, rows, stride)


def _even_split(total, most):
    """The size of the pieces when `total` items are cut into as few pieces of at most `most` as
    possible, all of (nearly) equal size: 32 rows in blocks of <= 31 become 16 + 16, not 31 + 1."""
    pieces = -(-total // most)
    return -(-total // pieces)


def _check_shapes(x_shape, w):
    """Raise BlockShapeError unless an input of x_shape (N, C, H, W) fits the weights w (O, C, k, k)."""
    if len(x_shape) != 4 or w.ndim != 4:
        raise BlockShapeError(f"expected x (N,C,H,W) and w (O,C,k,k), got {x_shape} and {w.shape}")
    k = w.shape[2]
    if w.shape[3] != k or k % 2 != 1:
        raise BlockShapeError(f"conv kernels must be square and odd, got {w.shape[2:]}")
    if w.shape[1] != x_shape[1]:
        raise BlockShapeError(f"input has {x_shape[1]} channels but w expects {w.shape[1]}")


def _check(x, w):
    """Validate shapes; return the float dtype used for every array of this call (w's for uint8
    pixels)."""
    _check_shapes(x.shape, w)
    source = w.dtype if is_pixels(x) else x.dtype
    return source if source in (np.float32, np.float64) else np.dtype(np.float64)


def _input(x, dtype, direct):
    """x as the kernels read it: C-contiguous, in `dtype`; uint8 pixels stay pixels for the direct
    kernels (they divide by 255 as they copy) and are converted for the im2col path. PixelRows are
    gathered (only the stack reads them in place: _stack_input)."""
    x = gathered(x)
    if is_pixels(x) and direct:
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(pixels_to_float(x, dtype), dtype)


def _chunks(n):
    """Number of fixed batch chunks: one per numba thread, never more than the samples."""
    return max(1, min(numba.get_num_threads(), n))


def forward_is_direct(x_shape, w_shape):
    """Whether the fused forward of an input of x_shape (N, C, H, W) and weights of w_shape runs on
    the direct kernels: below GEMM_MIN_CHANNELS input channels always, and from there on wherever
    numba_tile's pooled tile takes the shape (numba_direct.pools_in_tile). The tile's cost does not
    grow with the channel count: the study's conv4 (16 -> 32 channels, 16 x 16 planes, 256 samples,
    one thread) 7.4 ms against 11.2 ms for im2col + BLAS; at 64 -> 128 channels the two are equal.
    The backward pass has its own rule (backward_is_direct)."""
    _, c, _, wd = x_shape
    o, k = w_shape[0], w_shape[2]
    return c < GEMM_MIN_CHANNELS or bool(numba_direct.pools_in_tile(o, k, wd + 2 * (k // 2), wd // 2))


def conv_relu_pool_forward(x, w, b):
    """Fused forward: returns (y, code) exactly as ops.block.conv_relu_pool_reference."""
    dtype = _check(x, w)
    direct = forward_is_direct(x.shape, w.shape)
    x = _input(x, dtype, direct=direct)
    w = np.ascontiguousarray(w, dtype)
    b = np.ascontiguousarray(b, dtype)
    n, c, h, wd = x.shape
    o = w.shape[0]
    h2, w2 = h // 2, wd // 2
    y = np.empty((n, o, h2, w2), dtype)
    code = np.empty((n, o, h2, w2), np.uint8)
    if y.size == 0:
        return y, code
    nch = _chunks(n)
    if not direct:
        with numba_blas.single_threaded():
            if w.shape[2] == 3:
                _winograd_forward(x, w, b, y, code, nch)
            else:
                _gemm_forward(x, w, b, y, code, nch)
        return y, code
    xpad, acc, block = _forward_scratch(x.shape, w.shape, nch, dtype)
    numba_direct.direct_forward(x, w, numba_direct.winograd_weights(w), b, y, code, xpad, acc, block, nch)
    return y, code


def _forward_scratch(x_shape, w_shape, nch, dtype):
    """Per-thread padded planes and accumulator rows of the direct forward, and its window rows per
    pass (as many as fit BLOCK_ELEMS, evenly split)."""
    _, c, h, wd = x_shape
    k = w_shape[2]
    wp = wd + 2 * (k // 2)
    block = _even_split(h // 2, max(1, BLOCK_ELEMS // wp))
    xpad = _workspace(("xpad", h, wd, k), (nch, c, 2, numba_direct.plane_len(h, wd, k)), dtype)
    acc = _acc_workspace("acc", nch, block * wp + numba_direct.VEC, dtype)
    return xpad, acc, block


def backward_is_direct(x_shape, w_shape):
    """Whether the fused backward of an input of x_shape (N, C, H, W) and weights of w_shape runs on
    the direct kernels: below GEMM_MIN_CHANNELS input channels always; from there on where the
    input gradient runs on the tile (numba_direct.gradient_in_tile) and a plane has
    DIRECT_BACKWARD_POSITIONS positions per input channel or more."""
    _, c, h, wd = x_shape
    k = w_shape[2]
    return c < GEMM_MIN_CHANNELS or (bool(numba_direct.gradient_in_tile(c, k, wd + 2 * (k // 2)))
                                     and h * wd >= DIRECT_BACKWARD_POSITIONS * c)


def conv_relu_pool_backward(x, w, code, gy, need_gx=True):
    """Fused backward: (gx or None, gw, gb) exactly as ops.block.conv_relu_pool_backward_reference."""
    dtype = _check(x, w)
    direct = backward_is_direct(x.shape, w.shape)
    x = _input(x, dtype, direct=direct)
    w = np.ascontiguousarray(w, dtype)
    gy = np.ascontiguousarray(gy, dtype)
    code = np.ascontiguousarray(code, np.uint8)
    n, c, h, wd = x.shape
    o = w.shape[0]
    if gy.shape != (n, o, h // 2, wd // 2) or code.shape != gy.shape:
        raise BlockShapeError(f"gy {gy.shape} / code {code.shape} do not match the block output")
    nch = _chunks(n)
    gx = np.empty(x.shape, dtype) if need_gx else np.empty((0, c, h, wd), dtype)
    gw_part = np.empty((nch,) + w.shape, dtype)
    gb_part = np.empty((nch, o), dtype)
    if not direct:
        with numba_blas.single_threaded():
            if w.shape[2] == 3:
                _winograd_backward(x, w, code, gy, gx, gw_part, gb_part, nch, need_gx)
            else:
                _gemm_backward(x, w, code, gy, gx, gw_part, gb_part, nch, need_gx)
    else:
        _direct_backward(x, w, code, gy, gx, gw_part, gb_part, nch, need_gx)
    return (gx if need_gx else None), gw_part.sum(axis=0), gb_part.sum(axis=0)


def _flipped(w):
    """wflip[c, o] = w[o, c] flipped in both axes: the input gradient's kernels."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def _backward_scratch(x_shape, w_shape, nch, dtype):
    """Per-thread scratch of the direct backward (padded input and gradient planes, accumulator
    rows, weight-gradient partial sums) and its pass sizes (gx row pairs, weight-gradient flat positions)."""
    _, c, h, wd = x_shape
    o, k = w_shape[0], w_shape[2]
    wp = wd + 2 * (k // 2)
    gx_block = _even_split((h + 1) // 2, max(1, BLOCK_ELEMS // wp))
    # flat positions per weight-gradient pass: a multiple of VEC (the kernel rounds each pass up
    # to one, so a pass must not overlap the next), as even as possible
    total = max(1, (h // 2 - 1) * wp + 2 * (wd // 2))
    vec = numba_direct.VEC
    gw_len = -(-_even_split(total, BLOCK_ELEMS) // vec) * vec
    plane = numba_direct.plane_len(h, wd, k)
    xpad = _workspace(("xpad", h, wd, k), (nch, c, 2, plane), dtype)
    gpad = _workspace(("gpad", h, wd, k), (nch, o, 2, plane), dtype)
    acc = _acc_workspace("acc", nch, gx_block * wp + numba_direct.VEC, dtype)
    # the 3x3 weight gradient's vector partial sums (zero between calls; numba_direct.gw_from_lanes)
    gw_lanes = _workspace(("gw_lanes", o, c), (nch, o * c * 9 * numba_direct.LANES), dtype)
    return xpad, gpad, acc, gw_lanes, gx_block, gw_len


def _direct_backward(x, w, code, gy, gx, gw_part, gb_part, nch, need_gx):
    """Backward with the direct kernels into gx / per-chunk gw_part, gb_part."""
    xpad, gpad, acc, gw_lanes, gx_block, gw_len = _backward_scratch(x.shape, w.shape, nch, w.dtype)
    wflip = _flipped(w)
    numba_direct.direct_backward(x, wflip, numba_direct.winograd_weights(wflip), code, gy, gx, gw_part, gw_lanes,
                                 gb_part, xpad, gpad, acc, gx_block, gw_len, nch, need_gx)


def _check_stack(x, ws, bs=None):
    """Validate a stack of direct blocks (block i's output is block i+1's input); return its dtype
    and the input shape of every block."""
    if len(ws) < 2 or (bs is not None and len(bs) != len(ws)):
        raise BlockShapeError(f"a stack needs two blocks or more and one bias per weight, got {len(ws)}")
    dtype = _check(x, ws[0])
    shapes = [x.shape]
    for i, w in enumerate(ws):
        if i:
            n, _, h, wd = shapes[-1]
            shapes.append((n, ws[i - 1].shape[0], h // 2, wd // 2))
            _check_shapes(shapes[-1], w)
        if w.shape[1] >= GEMM_MIN_CHANNELS or w.shape[2] != 3:
            raise BlockShapeError(f"block {i + 1} of a stack does not take the direct 3x3 kernels")
    return dtype, shapes


def _stack_input(x, dtype):
    """The stack's input as (photos, rows): sample s is photos[rows[s]]. PixelRows of a C-contiguous
    array are read where they are (e.g. the memory-mapped cache: the batch is never copied; any
    other layout is gathered rather than copied whole); an array is its own source. Read-only
    either way, so the kernels are compiled once for both."""
    if isinstance(x, PixelRows) and x.source.flags.c_contiguous:
        photos, rows = np.ascontiguousarray(x.source), x.indices
    else:
        photos = _input(x, dtype, direct=True)
        rows = np.arange(len(photos))
    photos = photos.view()
    photos.flags.writeable = False
    return photos, rows


def stack_forward(x, ws, bs, keep=True):
    """Blocks in a row, block i's output feeding block i + 1, each sample through all of them before
    the next (numba_direct.stack_forward); returns ([y_i], [code_i]), the same arrays as
    conv_relu_pool_forward block after block. Every block must take the direct 3x3 kernels.
    keep=False (evaluation: no backward) returns ([y_last], []): the other outputs and the codes
    stay in per-thread scratch and never go to memory for the whole batch."""
    dtype, shapes = _check_stack(x, ws, bs)
    photos, rows = _stack_input(x, dtype)
    ws = tuple(np.ascontiguousarray(w, dtype) for w in ws)
    bs = tuple(np.ascontiguousarray(b, dtype) for b in bs)
    n, nch = len(rows), _chunks(len(rows))
    planes = [(w.shape[0], h // 2, wd // 2) for (_, _, h, wd), w in zip(shapes, ws)]
    ys = [np.empty((n,) + plane, dtype) if keep or i == len(ws) - 1
          else _workspace(f"stack_y{i}", (nch,) + plane, dtype) for i, plane in enumerate(planes)]
    codes = [np.empty((n,) + plane, np.uint8) if keep else _workspace(f"stack_code{i}", (nch,) + plane, np.uint8)
             for i, plane in enumerate(planes)]
    if ys[-1].size:
        scratch = [_forward_scratch(shape, w.shape, nch, dtype) for shape, w in zip(shapes, ws)]
        xpads, accs, blocks = (tuple(part) for part in zip(*scratch))
        winos = tuple(numba_direct.winograd_weights(w) for w in ws)
        numba_direct.stack_forward(photos, rows, ws, winos, bs, tuple(ys), tuple(codes), xpads, accs, blocks, nch,
                                   keep)
    return (ys, codes) if keep else (ys[-1:], [])


def stack_backward(x, ws, ys, codes, gy, need_gx=True):
    """(gx or None, [gw_i], [gb_i]) of the blocks of stack_forward from the last block's output
    gradient gy, each sample from the last block down to the first before the next
    (numba_direct.stack_backward); ys/codes as stack_forward returned them."""
    dtype, shapes = _check_stack(x, ws)
    photos, rows = _stack_input(x, dtype)
    ws = [np.ascontiguousarray(w, dtype) for w in ws]
    gy = np.ascontiguousarray(gy, dtype)
    if gy.shape != ys[-1].shape:
        raise BlockShapeError(f"gy {gy.shape} does not match the last block's output {ys[-1].shape}")
    nch = _chunks(len(rows))
    gx = np.empty(x.shape, dtype) if need_gx else np.empty((0,) + x.shape[1:], dtype)
    gw_parts = tuple(np.empty((nch,) + w.shape, dtype) for w in ws)
    gb_parts = tuple(np.empty((nch, w.shape[0]), dtype) for w in ws)
    scratch = [_backward_scratch(shape, w.shape, nch, dtype) for shape, w in zip(shapes, ws)]
    xpads, gpads, accs, gw_lanes, gx_blocks, gw_lens = (tuple(part) for part in zip(*scratch))
    # block i's output gradient (i < last), one sample per thread, kept in cache between blocks
    gscratch = tuple(_workspace("gscratch", (nch,) + y.shape[1:], dtype) for y in ys[:-1])
    if len(rows):
        wflips = tuple(_flipped(w) for w in ws)
        wino_flips = tuple(numba_direct.winograd_weights(wflip) for wflip in wflips)
        numba_direct.stack_backward(photos, rows, wflips, wino_flips, tuple(codes), tuple(ys), gy, gx, gw_parts,
                                    gw_lanes, gb_parts, xpads, gpads, accs, gscratch, gx_blocks, gw_lens, nch,
                                    need_gx)
    else:
        for part in gw_parts + gb_parts:
            part[...] = 0
    return ((gx if need_gx else None), [part.sum(axis=0) for part in gw_parts],
            [part.sum(axis=0) for part in gb_parts])


def _stack(h, wd):
    """Samples whose im2col rows go into one GEMM: about GEMM_ROWS rows, at least one sample."""
    return max(1, GEMM_ROWS // (h * wd))


def _gemm_weights(w):
    """wr[(i, j, c), o] = w[o, c, i, j]: the weights as the (k*k*C, O) right factor of the GEMM."""
    o, c, k, _ = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(k * k * c, o))


def _gemm_forward(x, w, b, y, code, nch):
    """Forward with im2col + BLAS into y / code (the bias is added while pooling)."""
    _, c, h, wd = x.shape
    o, k = w.shape[0], w.shape[2]
    rows = _stack(h, wd) * h * wd
    dt = x.dtype
    xh = _workspace("gemm_xh", (nch, h + k - 1, wd + k - 1, c), dt)
    cols = _workspace("gemm_cols", (nch, rows, k * k * c), dt)
    pre = _workspace("gemm_pre", (nch, rows, o), dt)
    numba_gemm.gemm_forward(x, _gemm_weights(w), b, y, code, xh, cols, pre, k, _stack(h, wd), nch)


def _winograd_stack(h, wd):
    """Samples whose pool windows go into one Winograd product: about WINOGRAD_TILES, at least one."""
    return max(1, WINOGRAD_TILES // max(1, (h // 2) * (wd // 2)))


def _spread_planes(rows, row_bytes):
    """Rows to allocate per transform plane so that the 16 planes of a Winograd buffer (rows x
    row_bytes each) start in 16 different 256-byte slots modulo 4 KiB. The transforms read or
    write all 16 planes at the same row; planes a multiple of 4 KiB apart would fall into one L1
    set (8 ways for 16 streams: every access missed, ~20x slower) and alias in the load-store unit."""
    for extra in range(4096):
        stride = (rows + extra) * row_bytes
        if len({(k * stride) % 4096 // 256 for k in range(16)}) == 16:
            return rows + extra
    return rows


def _winner_factors(dtype):
    """numba_winograd.winner_factors, built once per dtype (kept with the workspaces)."""
    key = ("winner_factors", np.dtype(dtype).str)
    if key not in _workspaces:
        _workspaces[key] = numba_winograd.winner_factors(dtype)
    return _workspaces[key]


def _winograd_scratch(x_shape, o, nch, dtype):
    """What the forward and backward passes share (numba_winograd): the samples per product and
    the per-thread column-parity copy of a sample, its row transforms, and the input (v) and
    product (m) transform planes of O output channels, spread over the cache sets."""
    _, c, h, wd = x_shape
    stack = _winograd_stack(h, wd)
    tiles = stack * (h // 2) * (wd // 2)
    item = np.dtype(dtype).itemsize
    xh = _workspace(("wino_xh", h, wd), (nch, h + 2, 2, (wd + 3) // 2, c), dtype)
    e = _workspace(("wino_e", h, wd), (nch, 4, (h // 2) * xh[0, 0].size), dtype)
    v = _workspace("wino_v", (nch, 16, _spread_planes(tiles, c * item), c), dtype)
    m = _workspace("wino_m", (nch, 16, _spread_planes(tiles, o * item), o), dtype)
    return stack, xh, e, v, m


def _winograd_forward(x, w, b, y, code, nch):
    """Forward of a 3x3 block with Winograd F(2x2, 3x3) tiles + BLAS into y / code."""
    stack, xh, e, v, m = _winograd_scratch(x.shape, w.shape[0], nch, x.dtype)
    numba_winograd.winograd_forward(x, numba_winograd.winograd_filters(w), b, y, code, xh, e, v, m, stack, nch)


def _winograd_backward(x, w, code, gy, gx, gw_part, gb_part, nch, need_gx):
    """Backward of a 3x3 block with Winograd F(2x2, 3x3) tiles + BLAS into gx / per-chunk gw_part,
    gb_part."""
    _, c, h, wd = x.shape
    o, dt = w.shape[0], x.dtype
    stack, xh, e, v, mg = _winograd_scratch(x.shape, o, nch, dt)
    gh = _workspace(("wino_gh", h, wd), xh.shape, dt)
    dv = _workspace("wino_dv", v.shape, dt)
    ct = _workspace("wino_ct", (nch, (h // 2) * (wd // 2), o), np.uint8)
    gt = _workspace("wino_gt", ct.shape, dt)
    prod = _workspace("wino_prod", (nch, c, o), dt)
    wg = _workspace("wino_wg", (nch, 16, c, o), dt)
    numba_winograd.winograd_backward(x, numba_winograd.winograd_filters(w), code, gy, _winner_factors(dt), gx,
                                     gw_part, gb_part, wg, xh, e, v, mg, dv, gh, ct, gt, prod, stack, nch, need_gx)


def _gemm_backward(x, w, code, gy, gx, gw_part, gb_part, nch, need_gx):
    """Backward with im2col + BLAS into gx / per-chunk gw_part, gb_part."""
    _, c, h, wd = x.shape
    o, k = w.shape[0], w.shape[2]
    kk = k * k * c
    rows = _stack(h, wd) * h * wd
    dt = x.dtype
    xp = _workspace("gemm_xp", (nch, c, h + k - 1, wd + k - 1), dt)
    gh = _workspace("gemm_gh", (nch, h + k - 1, wd + k - 1, c), dt)
    cols_t = _workspace("gemm_cols_t", (nch, kk * rows), dt)
    gcols = _workspace("gemm_gcols", (nch, rows, kk), dt)
    g = _workspace("gemm_g", (nch, rows, o), dt)
    tmp = _workspace("gemm_tmp", (nch, kk, o), dt)
    gw_rows = np.empty((nch, kk, o), dt)
    numba_gemm.gemm_backward(x, _gemm_weights(w), code, gy, gx, gw_rows, gb_part, xp, gh, cols_t, g,
                             gcols, tmp, k, _stack(h, wd), nch, need_gx)
    # back from rows (i, j, c) x columns o to w's (O, C, k, k)
    gw_part[:] = gw_rows.reshape(nch, k, k, c, o).transpose(0, 4, 3, 1, 2)


def warmup(dtype=np.float32):
    """Compile (or load from numba's on-disk cache) every kernel for `dtype` on tiny inputs.

    Call it in one process before others start (e.g. MPI rank 0 first) so that they only read the
    cache instead of racing to write it. Returns the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    # the direct kernels, Winograd tiles (3 x 3 from GEMM_MIN_CHANNELS on) and im2col (other sizes)
    for c, k in ((1, 3), (GEMM_MIN_CHANNELS, 3), (GEMM_MIN_CHANNELS, 1)):
        x = rng.standard_normal((2, c, 4, 4)).astype(dtype)
        w = rng.standard_normal((2, c, k, k)).astype(dtype)
        y, code = conv_relu_pool_forward(x, w, np.zeros(2, dtype))
        conv_relu_pool_backward(x, w, code, np.ones_like(y), need_gx=True)
    pixels = rng.integers(0, 256, (2, 1, 16, 16), dtype=np.uint8)  # the first block reads photos
    w = rng.standard_normal((2, 1, 3, 3)).astype(dtype)
    y, code = conv_relu_pool_forward(pixels, w, np.zeros(2, dtype))
    conv_relu_pool_backward(pixels, w, code, np.ones_like(y), need_gx=False)
    # the study's net runs its first three blocks as one stack (engine/model.py)
    ws = [rng.standard_normal((2, c, 3, 3)).astype(dtype) for c in (1, 2, 2)]
    ys, codes = stack_forward(pixels, ws, [np.zeros(2, dtype)] * 3)
    stack_backward(pixels, ws, ys, codes, np.ones_like(ys[-1]), need_gx=False)
    return time.perf_counter() - start
