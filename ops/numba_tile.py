"""The 3x3 direct convolution's inner tile, written as explicit vector code (LLVM IR via numba).

One call computes 16 flat positions t of the parity-plane layout (numba_direct's module doc) for
four output channels at once, both output rows of each pooling window:

    even[o][t] = init[o] + sum_c sum_(i,j) w[o, c, i, j] * P_c[i % 2]      [t + (i // 2) * wp + j]
    odd[o][t]  = init[o] + sum_c sum_(i,j) w[o, c, i, j] * P_c[(i+1) % 2]  [t + ((i+1) // 2) * wp + j]

Down each kernel column j the two rows are Winograd's F(2, 3): with the column's taps g = w[o, c, :, j]
and the four input rows it meets, d0..d3 = P_c[0], P_c[1], P_c[0] + wp, P_c[1] + wp at t + j,

    even = m1 + m2 + m3,   odd = m2 - m3 - m4,
    m1 = (d0 - d2) g0,   m2 = (d1 + d2) (g0 + g1 + g2) / 2,   m3 = (d2 - d1) (g0 - g1 + g2) / 2,
    m4 = (d1 - d3) g2

(expand: even = d0 g0 + d1 g1 + d2 g2, odd = d1 g0 + d2 g1 + d3 g2), so 4 multiply-adds replace 6.
The m are linear in the inputs: each is summed over all channels and columns, and the two rows are
formed once at the end. The sixteen sums (4 channels x m1..m4) stay in vector registers across ALL
input channels: per channel the tile loads its 12 input vectors once, transforms them with 12
additions shared by the four output channels, and feeds them to 48 fused multiply-adds (72 without
the transform) whose weights, transformed once per call (numba_direct.winograd_weights), are
broadcast from memory. The additions run beside the multiply-adds (Zen 4 has separate add pipes),
so the tile needs two thirds of the multiply-add cycles; the training step ran 8-11 % faster. The
loop kernels of numba_direct (written for numba's auto-vectoriser) instead load and store their
accumulator rows once per input channel and take the shapes the tile does not. numba cannot express
"keep this vector in a register", hence the IR: the loop over channels is generated with
cgutils.for_range and the sums live in allocas that LLVM promotes to registers (16 sums, a column's
4 inputs and their 4 transforms of the 32 AVX-512 registers).

Two ways out of the registers:
    conv3_tile_rows   stores the sums into the rows of the output planes (the input gradient)
    conv3_tile_pool   pools them in registers: positions 2q and 2q+1 of the even and odd rows are
                      one 2x2 window, so the 16 positions give 8 windows, whose value and code
                      (numba_direct.window_code, the same comparisons lane by lane) it writes
                      straight to the block's outputs with masked stores

Each m is one chain of fused multiply-adds in the order (c, j), starting from zero, and the rows are
init + m1 + m2 + m3 and init + m2 - m3 - m4 (in the order LLVM picks under the callers' fastmath
flags): fixed at compile time, so results do not depend on threads or batch size.

Two more kernels of the backward pass are written the same way:
    corr3_tile_pair   the weight gradient: two output channels against one input channel, 18
                      partial-sum vectors in registers over a pass's positions, kept lane by lane
                      in memory between calls and reduced over the lanes once per batch
    scatter_windows   the pooled gradient back to its windows' winning positions, 16 windows per
                      call with vector selects and interleaving shuffles

numba's on-disk cache tracks only the source file of a cached function, not this one: the kernels
that compile these tiles in record this file's digest (numba_direct.CACHE_DEPENDS_ON), so editing it
means editing them, which recompiles them.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .pool_code import RELU_ZERO

LANES = 16  # flat positions per tile (one AVX-512 vector of float32)
OUTPUTS = 4  # output channels per tile
WINDOWS = LANES // 2  # pooling windows per tile and channel

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I8 = ir.IntType(8)


def _is_flat(array, dtype):
    """True for a 1-D C-contiguous array of `dtype`."""
    return isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C" and array.dtype == dtype


def _const(n):
    return ir.Constant(_I64, n)


def _at(builder, ptr, *offsets):
    """ptr advanced by each offset (in elements) in turn."""
    for off in offsets:
        ptr = builder.gep(ptr, [off])
    return ptr


def _as_intp(context, builder, signature, args):
    """The call's integer arguments as intp (so index arithmetic has one type)."""
    return [context.cast(builder, value, ty, types.intp) if isinstance(ty, types.Integer) else value
            for value, ty in zip(args, signature.args)]


def _data(context, builder, ty, value):
    """Pointer to the first element of an array argument."""
    return context.make_array(ty)(context, builder, value).data


def _fma(builder, vec):
    """The fused multiply-add intrinsic of vector type vec (llvm.fma: one rounding per lane)."""
    kind = "f32" if vec.element == ir.FloatType() else "f64"
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                          f"llvm.fma.v{vec.count}{kind}")


def _load_vector(builder, vec, ptr):
    """The vector of type vec at ptr (no alignment assumed)."""
    return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)


def _broadcast(builder, vec, ptr):
    """The scalar at ptr in every lane of vector type vec (compiled into a {1to16} memory operand
    where its one user is a multiply-add)."""
    lane0 = builder.insert_element(ir.Constant(vec, ir.Undefined), builder.load(ptr), ir.Constant(_I32, 0))
    return builder.shuffle_vector(lane0, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vec.count), [0] * vec.count))


def _lane_mask(builder, vty, bits):
    """The integer `bits` (lane u: bit u) as the <lanes x i1> mask of vector type vty, and the
    element's name in LLVM's masked-intrinsic names."""
    lanes = vty.count
    mask = builder.bitcast(builder.trunc(bits, ir.IntType(lanes)), ir.VectorType(ir.IntType(1), lanes))
    elem = vty.element
    return mask, "i8" if elem == _I8 else "f32" if elem == ir.FloatType() else "f64"


def _tile_sums(context, builder, dtype, pdata, start, wp, plen, channels, wdata, o0, idata):
    """Emit the tile's accumulation; return [(even, odd)] vectors of the OUTPUTS channels.

    Winograd F(2, 3) down the kernel's columns: for kernel column j with taps g = w[:, j] and the
    four input rows d0..d3 (a0, b0, a1, b1 at column offset j), the two output rows are
        even = m1 + m2 + m3,   odd = m2 - m3 - m4,
        m1 = (d0 - d2) g0,  m2 = (d1 + d2) (g0 + g1 + g2) / 2,  m3 = (d2 - d1) (g0 - g1 + g2) / 2,
        m4 = (d1 - d3) g2,
    4 multiply-adds instead of 6. All four m are linear in the inputs, so each is summed over every
    channel and column first and the two rows are formed once at the end. wdata holds the
    transformed weights (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2) as u[o // 4, c, o % 4, j, :]
    (winograd_weights; o0 a multiple of 4): the 48 weights one input channel gives the tile lie
    together, so each multiply-add takes its weight at a constant offset from one pointer, never
    through an index register (Intel's cores can issue a three-input instruction with an indexed
    memory operand as two micro-ops; on the Xeon the indexed layout cost 1.03-1.36x in
    bench/tile_mix.py)."""
    vec = ir.VectorType(context.get_data_type(dtype), LANES)
    fma = _fma(builder, vec)

    zero = ir.Constant(vec, None)
    # allocas that LLVM keeps in registers: m1..m4 of each output channel
    sums = [[cgutils.alloca_once(builder, vec) for _ in range(4)] for _ in range(OUTPUTS)]
    for slot in (slot for quad in sums for slot in quad):
        builder.store(zero, slot)
    with cgutils.for_range(builder, channels) as loop:
        c = loop.index
        even = _at(builder, pdata, builder.mul(c, builder.mul(plen, _const(2))), start)  # P_c[0][t]
        odd = _at(builder, even, plen)  # P_c[1][t]
        block = _at(builder, wdata, builder.mul(builder.add(builder.mul(o0, channels), builder.mul(c, _const(OUTPUTS))),
                                                _const(12)))  # u[o0 // 4, c]
        for j in range(3):
            d0 = _load_vector(builder, vec, _at(builder, even, _const(j)))
            d1 = _load_vector(builder, vec, _at(builder, odd, _const(j)))
            d2 = _load_vector(builder, vec, _at(builder, even, wp, _const(j)))
            d3 = _load_vector(builder, vec, _at(builder, odd, wp, _const(j)))
            e = (builder.fsub(d0, d2), builder.fadd(d1, d2), builder.fsub(d2, d1), builder.fsub(d1, d3))
            for k in range(OUTPUTS):
                u = _at(builder, block, _const(12 * k + 4 * j))
                for m in range(4):
                    weight = _broadcast(builder, vec, _at(builder, u, _const(m)))
                    builder.store(builder.call(fma, [weight, e[m], builder.load(sums[k][m])]), sums[k][m])
    result = []
    for k in range(OUTPUTS):
        first = _broadcast(builder, vec, _at(builder, idata, builder.add(o0, _const(k))))
        m1, m2, m3, m4 = (builder.load(slot) for slot in sums[k])
        ev = builder.fadd(first, builder.fadd(builder.fadd(m1, m2), m3))
        od = builder.fadd(first, builder.fsub(builder.fsub(m2, m3), m4))
        result.append((ev, od))
    return result


def _check(planes, w, init, out, counts):
    """The tile's argument types, or False: flat arrays of one float type, integer counts."""
    dtype = planes.dtype if isinstance(planes, types.Array) else None
    return (dtype in (types.float32, types.float64) and all(_is_flat(a, dtype) for a in (planes, w, init, out))
            and all(isinstance(n, types.Integer) for n in counts))


def _masked_store(builder, value, data, index, bits):
    """Store the lanes of vector `value` whose bit is set in the integer `bits` (lane u: bit u) to
    data[index + u], touching no other memory (llvm.masked.store: AVX-512 mask registers)."""
    vty = value.type
    mask, kind = _lane_mask(builder, vty, bits)
    store = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), _I32, mask.type]),
        f"llvm.masked.store.v{vty.count}{kind}.p0")
    builder.call(store, [value, builder.bitcast(builder.gep(data, [index]), vty.as_pointer()),
                         ir.Constant(_I32, 1), mask])


@intrinsic
def conv3_tile_rows(typingctx, planes, start, wp, plane_len, channels, w, o0, init, out, plane_size, row_stride,
                    first, first_even, first_odd, second, second_even, second_odd):
    """Store the tile's sums (module doc) straight into output planes: for output channel o0 + k
    and lane u (position start + u), the even sum to out[(o0 + k) * plane_size + first + u] where
    bit u of first_even is set, the odd sum to out[... + first + row_stride + u] where bit u of
    first_odd is; likewise from `second` with second_even / second_odd (the lanes past the end of
    the row pair start the next one; the masks leave out the pad columns and rows past the plane).

    planes: the `channels` input channels' parity planes, flattened (C, 2, plane_len); w: the
    Winograd weights (O/4, C, 4, 3, 4) flattened (numba_direct.winograd_weights); init: one value per
    output channel added to its sums (the bias, or zeros);
    out: the output planes (O, H, W) flattened, row_stride = W. All 1-D C-contiguous arrays of one
    float type. No bounds checks on the reads: the caller guarantees every position read exists
    (numba_direct's plane slack)."""
    counts = (start, wp, plane_len, channels, o0, plane_size, row_stride, first, first_even, first_odd, second,
              second_even, second_odd)
    if not _check(planes, w, init, out, counts):
        return None
    sig = types.void(planes, start, wp, plane_len, channels, w, o0, init, out, *counts[5:])

    def codegen(context, builder, signature, args):
        (planes_v, start_v, wp_v, plen_v, chan_v, w_v, o0_v, init_v, out_v, size_v, stride_v, first_v, fe_v,
         fo_v, second_v, se_v, so_v) = _as_intp(context, builder, signature, args)
        ty = signature.args
        sums = _tile_sums(context, builder, ty[0].dtype, _data(context, builder, ty[0], planes_v), start_v, wp_v,
                          plen_v, chan_v, _data(context, builder, ty[5], w_v), o0_v,
                          _data(context, builder, ty[7], init_v))
        odata = _data(context, builder, ty[8], out_v)
        for k, (even, odd) in enumerate(sums):
            plane = builder.mul(builder.add(o0_v, _const(k)), size_v)
            for offset, even_bits, odd_bits in ((first_v, fe_v, fo_v), (second_v, se_v, so_v)):
                index = builder.add(plane, offset)
                _masked_store(builder, even, odata, index, even_bits)
                _masked_store(builder, odd, odata, builder.add(index, stride_v), odd_bits)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def conv3_tile_pool(typingctx, planes, start, wp, plane_len, channels, w, o0, init, ys, cs, plane_size, first,
                    first_mask, second, second_mask):
    """Pool the tile (module doc) straight into the outputs: for output channel o0 + k, window q < 8
    (positions start + 2q, start + 2q + 1 of the even and odd rows) has the value and code that
    numba_direct.window_code gives; they go to ys / cs[(o0 + k) * plane_size + first + q] where bit
    q of first_mask is set, and to [... + second + q] where bit q of second_mask is (the tile's
    windows may end one output row and start the next; the masks leave out the windows of the pad
    columns). ys: float outputs (O, H/2, W/2) flattened, cs: their uint8 codes; start must be even;
    the other arguments as conv3_tile_rows."""
    counts = (start, wp, plane_len, channels, o0, plane_size, first, first_mask, second, second_mask)
    if not (_check(planes, w, init, ys, counts) and _is_flat(cs, types.uint8)):
        return None
    sig = types.void(planes, start, wp, plane_len, channels, w, o0, init, ys, cs, plane_size, first, first_mask,
                     second, second_mask)

    def codegen(context, builder, signature, args):
        (planes_v, start_v, wp_v, plen_v, chan_v, w_v, o0_v, init_v, ys_v, cs_v, size_v, first_v, fmask_v,
         second_v, smask_v) = _as_intp(context, builder, signature, args)
        ty = signature.args
        sums = _tile_sums(context, builder, ty[0].dtype, _data(context, builder, ty[0], planes_v), start_v, wp_v,
                          plen_v, chan_v, _data(context, builder, ty[5], w_v), o0_v,
                          _data(context, builder, ty[7], init_v))
        ydata = _data(context, builder, ty[8], ys_v)
        cdata = _data(context, builder, ty[9], cs_v)
        elem = context.get_data_type(ty[0].dtype)
        half = ir.VectorType(elem, WINDOWS)
        small = ir.VectorType(_I8, WINDOWS)

        def lanes(v, first_lane):
            """Lanes first_lane, first_lane + 2, ... of v: the left (0) or right (1) column of each window."""
            return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, WINDOWS),
                                                            list(range(first_lane, LANES, 2))))

        def code(n):
            return ir.Constant(small, [n] * WINDOWS)

        zero = ir.Constant(half, [0.0] * WINDOWS)
        for k, (ev, od) in enumerate(sums):
            v0, v1, v2, v3 = lanes(ev, 0), lanes(ev, 1), lanes(od, 0), lanes(od, 1)
            # window_code: the first maximum of (v0, v1 / v2, v3) is the first maximum of the better
            # pair, the first pair winning ties; 0 and RELU_ZERO when that maximum is <= 0
            up = builder.fcmp_ordered(">", v1, v0)
            m01, c01 = builder.select(up, v1, v0), builder.select(up, code(1), code(0))
            down = builder.fcmp_ordered(">", v3, v2)
            m23, c23 = builder.select(down, v3, v2), builder.select(down, code(3), code(2))
            low = builder.fcmp_ordered(">", m23, m01)
            m, c = builder.select(low, m23, m01), builder.select(low, c23, c01)
            passed = builder.fcmp_ordered(">", m, zero)
            value, c = builder.select(passed, m, zero), builder.select(passed, c, code(RELU_ZERO))
            plane = builder.mul(builder.add(o0_v, _const(k)), size_v)
            for offset, bits in ((first_v, fmask_v), (second_v, smask_v)):
                index = builder.add(plane, offset)
                _masked_store(builder, value, ydata, index, bits)
                _masked_store(builder, c, cdata, index, bits)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def corr3_tile_pair(typingctx, grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first,
                    next_sums):
    """Add two output channels' 3x3 weight-gradient sums against one input channel (numba_direct's
    module doc) over n flat positions, lane by lane, to vector partial sums kept in memory.

    For output channel k in (0, 1), tap (i, j) and lane u, over t = start + u, start + u + 16, ...:

        lanes[first + k * next_sums + (3i + j) * 16 + u] += sum_t gA_k[t] * X[i % 2][t + (i // 2) wp + j]
                                                                 + gB_k[t] * X[(i+1) % 2][t + ((i+1) // 2) wp + j]

    with gA_0[t] = grads[upper + t], gB_0[t] = grads[lower + t] (the gradient rows 2r and 2r + 1),
    gA_1, gB_1 the same next_output elements further, and X[0][t] = planes[start + t], X[1][t] =
    planes[start + plane_len + t] the input channel's even and odd parity planes. The 18 partial-sum
    vectors stay in registers over all n positions (n a multiple of 16), fed by 4 gradient and 12
    input vector loads per 36 fused multiply-adds; they are summed over their lanes once per batch
    (numba_direct.gw_from_lanes) instead of once per call. No bounds checks: the caller guarantees
    every position read exists."""
    counts = (upper, lower, next_output, start, wp, plane_len, n, first, next_sums)
    dtype = grads.dtype if isinstance(grads, types.Array) else None
    if not (dtype in (types.float32, types.float64) and all(_is_flat(a, dtype) for a in (grads, planes, lanes))
            and all(isinstance(c, types.Integer) for c in counts)):
        return None
    sig = types.void(grads, upper, lower, next_output, planes, start, wp, plane_len, n, lanes, first, next_sums)

    def codegen(context, builder, signature, args):
        (g_v, upper_v, lower_v, next_v, planes_v, start_v, wp_v, plen_v, n_v, lanes_v, first_v,
         next_sums_v) = _as_intp(context, builder, signature, args)
        ty = signature.args
        vec = ir.VectorType(context.get_data_type(ty[0].dtype), LANES)
        fma = _fma(builder, vec)
        gdata = _data(context, builder, ty[0], g_v)
        xdata = _data(context, builder, ty[4], planes_v)
        sdata = _data(context, builder, ty[9], lanes_v)

        slots = [_at(builder, sdata, builder.add(first_v, builder.mul(next_sums_v, _const(k))), _const(tap * LANES))
                 for k in range(2) for tap in range(9)]
        sums = []  # allocas that LLVM keeps in registers
        for slot in slots:
            alloca = cgutils.alloca_once(builder, vec)
            builder.store(_load_vector(builder, vec, slot), alloca)
            sums.append(alloca)
        steps = builder.udiv(n_v, _const(LANES))
        with cgutils.for_range(builder, steps) as loop:
            t = builder.mul(loop.index, _const(LANES))
            grad = [_load_vector(builder, vec, _at(builder, gdata, base, t))
                    for base in (upper_v, lower_v, builder.add(upper_v, next_v), builder.add(lower_v, next_v))]
            even = _at(builder, xdata, start_v, t)
            odd = _at(builder, even, plen_v)
            # input rows of the even gradient row's taps (i = 0, 1, 2): X0, X1, X0 + wp; the odd row's: X1, X0 + wp,
            # X1 + wp
            rows = (even, odd, _at(builder, even, wp_v), _at(builder, odd, wp_v))
            for j in range(3):
                loaded = [_load_vector(builder, vec, _at(builder, row, _const(j))) for row in rows]
                for k in range(2):
                    ga, gb = grad[2 * k], grad[2 * k + 1]
                    for i in range(3):
                        slot = sums[9 * k + 3 * i + j]
                        s = builder.call(fma, [ga, loaded[i], builder.load(slot)])
                        builder.store(builder.call(fma, [gb, loaded[i + 1], s]), slot)
        for slot, alloca in zip(slots, sums):
            builder.store(builder.load(alloca), builder.bitcast(slot, vec.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


def _masked_load(builder, vty, data, index, bits):
    """Load the lanes of a vector of type vty whose bit is set in the integer `bits` from
    data[index + u], zeros elsewhere, touching no other memory (llvm.masked.load)."""
    mask, kind = _lane_mask(builder, vty, bits)
    load = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty.as_pointer(), _I32, mask.type, vty]),
        f"llvm.masked.load.v{vty.count}{kind}.p0")
    return builder.call(load, [builder.bitcast(builder.gep(data, [index]), vty.as_pointer()), ir.Constant(_I32, 1),
                               mask, ir.Constant(vty, None)])


@intrinsic
def scatter_windows(typingctx, codes, grads, first, count, planes, upper, lower):
    """Write `count` (1 to 16) pooled gradients of one window row to the two gradient rows below
    them, as 2 x 2 windows: window u (grads[first + u], code codes[first + u]) owns
    planes[upper + 2u], planes[upper + 2u + 1] (its upper row) and planes[lower + 2u],
    planes[lower + 2u + 1] (its lower row); the gradient goes to the position its code names
    (0 1 / 2 3, numba_direct.window_code) and the other three get 0, all four under RELU_ZERO.
    Vector selects and interleaving shuffles, with masked loads and stores at a row's end (a plain
    loop would store the four positions one by one)."""
    dtype = grads.dtype if isinstance(grads, types.Array) else None
    if not (dtype in (types.float32, types.float64) and _is_flat(codes, types.uint8) and _is_flat(grads, dtype)
            and _is_flat(planes, dtype) and all(isinstance(n, types.Integer) for n in (first, count, upper, lower))):
        return None
    sig = types.void(codes, grads, first, count, planes, upper, lower)

    def codegen(context, builder, signature, args):
        codes_v, grads_v, first_v, count_v, planes_v, upper_v, lower_v = _as_intp(context, builder, signature, args)
        ty = signature.args
        elem = context.get_data_type(ty[1].dtype)
        vec = ir.VectorType(elem, LANES)
        small = ir.VectorType(_I8, LANES)
        one = _const(1)
        bits = builder.sub(builder.shl(one, count_v), one)
        code = _masked_load(builder, small, _data(context, builder, ty[0], codes_v), first_v, bits)
        grad = _masked_load(builder, vec, _data(context, builder, ty[1], grads_v), first_v, bits)
        zero = ir.Constant(vec, None)
        owned = [builder.select(builder.icmp_unsigned("==", code, ir.Constant(small, [k] * LANES)), grad, zero)
                 for k in range(4)]
        out = _data(context, builder, ty[4], planes_v)
        # lanes of window u in a row: 2u and 2u + 1; windows 0-7 fill the first vector, 8-15 the second
        eight = _const(WINDOWS)
        halves = [builder.select(builder.icmp_signed("<", count_v, eight), count_v, eight),
                  builder.select(builder.icmp_signed(">", count_v, eight), builder.sub(count_v, eight), _const(0))]
        for row, (left, right) in ((upper_v, owned[:2]), (lower_v, owned[2:])):
            for h, windows in enumerate(halves):
                order = [u for w in range(WINDOWS * h, WINDOWS * (h + 1)) for u in (w, w + LANES)]
                pairs = builder.shuffle_vector(left, right, ir.Constant(ir.VectorType(_I32, LANES), order))
                mask = builder.sub(builder.shl(one, builder.mul(windows, _const(2))), one)
                _masked_store(builder, pairs, out, builder.add(row, _const(LANES * h)), mask)
        return context.get_dummy_value()

    return sig, codegen
