"""The 3x3 direct convolution's inner tile, written as explicit vector code (LLVM IR via numba).

One call computes 16 flat positions t of the parity-plane layout (numba_direct's module doc) for
four output channels at once, both output rows of each pooling window:

    even[o][t] = init[o] + sum_c sum_(i,j) w[o, c, i, j] * P_c[i % 2]      [t + (i // 2) * wp + j]
    odd[o][t]  = init[o] + sum_c sum_(i,j) w[o, c, i, j] * P_c[(i+1) % 2]  [t + ((i+1) // 2) * wp + j]

The eight sums (4 channels x even/odd) stay in vector registers across ALL input channels: per
channel the tile loads the 12 input vectors it needs once and feeds them to 72 fused multiply-adds
whose weights are broadcast from memory, and it stores the sums once at the end. The loop kernels
of numba_direct (written for numba's auto-vectoriser) instead load and store their accumulator rows
once per input channel, which in a whole block keeps them at 60-70 % of the machine's sgemm rate;
this tile runs at its rate (bench/block_passes.py). numba cannot express "keep this vector in a
register", hence the IR: the loop over channels is generated with cgutils.for_range and the sums
live in allocas that LLVM promotes to registers (8 sums + 12 inputs of the 32 AVX-512 registers).

Each sum is one chain of fused multiply-adds in the order (c, i, j), starting from init: fixed at
compile time, so results do not depend on threads or batch size.

numba's on-disk cache tracks only the source file of a cached function, not this one: after
editing this file, clear the cache (the __pycache__/*.nbi/*.nbc files of ops/) before measuring.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # flat positions per tile (one AVX-512 vector of float32)
OUTPUTS = 4  # output channels per tile


def _is_flat(array, dtype=None):
    """True for a 1-D C-contiguous float array (of `dtype` when given)."""
    return (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"
            and array.dtype in (types.float32, types.float64) and (dtype is None or array.dtype == dtype))


@intrinsic
def conv3_tile(typingctx, planes, start, wp, plane_len, channels, w, o0, init, acc, acc_stride, acc_start):
    """Store even/odd sums (module doc) of output channels o0 .. o0+3 at positions start .. start+15
    to acc[(2 * k + parity) * acc_stride + acc_start + u] for channel o0 + k and u < 16.

    planes: the `channels` input channels' parity planes, flattened (C, 2, plane_len); w: the
    weights (O, C, 3, 3) flattened; init: one start value per output channel (the bias, or zeros);
    acc: flat output. All 1-D C-contiguous arrays of one float type. No bounds checks: the caller
    guarantees every position read and written exists (numba_direct's plane slack)."""
    arrays = (planes, w, init, acc)
    if not all(_is_flat(a, planes.dtype if _is_flat(planes) else None) for a in arrays):
        return None
    counts = (start, wp, plane_len, channels, o0, acc_stride, acc_start)
    if not all(isinstance(n, types.Integer) for n in counts):
        return None
    sig = types.void(planes, start, wp, plane_len, channels, w, o0, init, acc, acc_stride, acc_start)

    def codegen(context, builder, signature, args):
        args = [context.cast(builder, value, ty, types.intp) if isinstance(ty, types.Integer) else value
                for value, ty in zip(args, signature.args)]
        planes_v, start_v, wp_v, plen_v, chan_v, w_v, o0_v, init_v, acc_v, astride_v, astart_v = args
        i64 = ir.IntType(64)
        elem = context.get_data_type(signature.args[0].dtype)
        vec = ir.VectorType(elem, LANES)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec, vec, vec]),
            f"llvm.fma.v{LANES}{'f32' if elem == ir.FloatType() else 'f64'}")

        def data(index, value):
            return context.make_array(signature.args[index])(context, builder, value).data

        pdata, wdata, idata, adata = data(0, planes_v), data(5, w_v), data(7, init_v), data(8, acc_v)

        def const(n):
            return ir.Constant(i64, n)

        def at(ptr, *offsets):
            for off in offsets:
                ptr = builder.gep(ptr, [off])
            return ptr

        def broadcast(ptr):
            """The scalar at ptr in every lane."""
            lane0 = builder.insert_element(ir.Constant(vec, ir.Undefined), builder.load(ptr),
                                           ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(lane0, ir.Constant(vec, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))

        def load(ptr):
            return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)

        # sums[k][parity]: allocas that LLVM keeps in registers
        sums = []
        for k in range(OUTPUTS):
            start_value = broadcast(at(idata, builder.add(o0_v, const(k))))
            pair = [cgutils.alloca_once(builder, vec) for _ in range(2)]
            for slot in pair:
                builder.store(start_value, slot)
            sums.append(pair)

        with cgutils.for_range(builder, chan_v) as loop:
            c = loop.index
            even = at(pdata, builder.mul(c, builder.mul(plen_v, const(2))), start_v)  # P_c[0][t]
            odd = at(even, plen_v)  # P_c[1][t]
            # the 12 input vectors: rows a0 = P0[t + j], b0 = P1[t + j], a1 = P0[t + wp + j],
            # b1 = P1[t + wp + j]; kernel row i of the even output reads (a0, b0, a1)[i], of the odd
            # output (b0, a1, b1)[i]
            a0, b0 = ([load(at(base, const(j))) for j in range(3)] for base in (even, odd))
            a1, b1 = ([load(at(base, wp_v, const(j))) for j in range(3)] for base in (even, odd))
            rows = ((a0, b0, a1), (b0, a1, b1))
            for k in range(OUTPUTS):
                taps = at(wdata, builder.mul(builder.add(builder.mul(builder.add(o0_v, const(k)), chan_v), c),
                                             const(9)))
                ev, od = builder.load(sums[k][0]), builder.load(sums[k][1])
                for i in range(3):
                    for j in range(3):
                        weight = broadcast(at(taps, const(3 * i + j)))
                        ev = builder.call(fma, [weight, rows[0][i][j], ev])
                        od = builder.call(fma, [weight, rows[1][i][j], od])
                builder.store(ev, sums[k][0])
                builder.store(od, sums[k][1])

        for k in range(OUTPUTS):
            for parity in range(2):
                row = at(adata, builder.add(builder.mul(const(2 * k + parity), astride_v), astart_v))
                builder.store(builder.load(sums[k][parity]), builder.bitcast(row, vec.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen
