"""Which of the forward tile's instructions hold it below the core's multiply-add peak.

    nice -n -5 python bench/tile_mix.py

The forward tile (ops/numba_tile.py: conv3_tile_pool) spends, per input channel, 48 fused
multiply-adds whose weights are broadcast from memory operands, 12 unaligned 16-lane loads and the
12 additions of Winograd's F(2, 3) input transform; on the Intel Xeon it executed its multiply-adds
at about 0.6 of the peak (bench/tile_peak.py). These VMs have no hardware counters, so this times
the tile's own inner loop beside variants that each change one suspect, on one thread over
L1-resident planes, round by round with the multiply-add loop of bench/tile_peak.py:

    tile loop          the tile's accumulation as the tile emits it (_tile_sums), no pooling after
    indexed weights    the weights laid out by output channel, u[o, c, j, :], as the tile had them
                       until this script showed the cost: 36 of the 48 memory operands then need an
                       index register, and Intel's cores can issue such a three-input instruction
                       as two micro-ops
    no additions       the loads feed the multiply-adds directly (additions on the FMA pipes?)
    register weights   four weight vectors held in registers, no broadcast loads (load ports?)
    aligned loads      every vector load starts on a 64-byte boundary (cache-line splits?)
    none of the three  aligned loads straight into multiply-adds with register weights

Each variant keeps the 48 multiply-adds into 16 accumulators per channel; the fraction is its
executed multiply-adds over the peak loop's, median of the rounds' ratios. Writes
bench/results/NAME.json and NAME.md.
"""
import argparse
import os
import statistics
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import alternating_times, machine_info, write_markdown, write_result  # noqa: E402
from bench.flops import load_average  # noqa: E402
from bench.tile_peak import Ceilings, forward_row  # noqa: E402
from ops import numba_blas  # noqa: E402
from ops.numba_tile import (LANES, OUTPUTS, _at, _broadcast, _const, _data, _fma, _load_vector,  # noqa: E402
                            _tile_sums)

# Loops are compiled afresh on every run (no on-disk cache), like bench/tile_peak.py's.
CHANNELS = 16  # input channels per call: 16 x 4 rows x 2 cache lines, about 8 KiB touched (L1)
ROW = 144  # floats per padded row: a multiple of 16, so "aligned" offsets start cache lines
PLANE = 4 * ROW  # floats per (channel, row parity) plane
ROUNDS = 21
VARIANTS = {  # name: (additions, weights from memory, unaligned loads, weights indexed by output channel)
    "indexed weights": (True, True, True, True),
    "no additions": (False, True, True, False),
    "register weights": (True, False, True, False),
    "aligned loads": (True, True, False, False),
    "none of the three": (False, False, False, False),
}


def _variant_sums(context, builder, pdata, channels, wdata, additions, memory_weights, unaligned, indexed):
    """Emit one variant's accumulation over `channels` channels; return its 16 sums. The structure
    follows _tile_sums (per channel and kernel column j: 4 row loads, their transform, 16
    multiply-adds); the flags drop the additions, the broadcast loads or the misalignment, or bring
    back the weights' index registers."""
    vec = ir.VectorType(ir.FloatType(), LANES)
    fma = _fma(builder, vec)
    held = [_broadcast(builder, vec, _at(builder, wdata, _const(m))) for m in range(4)]
    sums = [[cgutils.alloca_once(builder, vec) for _ in range(4)] for _ in range(OUTPUTS)]
    for slot in (slot for quad in sums for slot in quad):
        builder.store(ir.Constant(vec, None), slot)
    with cgutils.for_range(builder, channels) as loop:
        even = _at(builder, pdata, builder.mul(loop.index, _const(2 * PLANE)))
        odd = _at(builder, even, _const(PLANE))
        for j in range(3):
            shift = j if unaligned else LANES * j
            d = [_load_vector(builder, vec, _at(builder, plane, _const(row * ROW + shift)))
                 for row, plane in ((0, even), (0, odd), (1, even), (1, odd))]
            e = ((builder.fsub(d[0], d[2]), builder.fadd(d[1], d[2]), builder.fsub(d[2], d[1]),
                  builder.fsub(d[1], d[3])) if additions else d)
            for k in range(OUTPUTS):
                if indexed:  # weights[k, c, j, m]: one index register per k
                    u = _at(builder, wdata, builder.mul(builder.add(builder.mul(_const(k), channels), loop.index),
                                                        _const(12)), _const(4 * j))
                else:  # the tile's layout, weights[c, k, j, m]: constant offsets from the channel's first
                    u = _at(builder, wdata, builder.mul(loop.index, _const(OUTPUTS * 12)), _const(12 * k + 4 * j))
                for m in range(4):
                    weight = _broadcast(builder, vec, _at(builder, u, _const(m))) if memory_weights else held[m]
                    builder.store(builder.call(fma, [weight, e[m], builder.load(sums[k][m])]), sums[k][m])
    return [builder.load(slot) for quad in sums for slot in quad]


def _mix_intrinsic(variant):
    """An intrinsic mix(planes, channels, weights, out) that runs `variant`'s accumulation and adds
    its sums into out, so that nothing is dropped: a variant's 16 sums into out[0:16 * 16]; for None,
    the tile's own (_tile_sums), its 8 rows (even, odd per output channel) into out[0:8 * 16], with
    out[0:4] read as the rows' bias (the tile's init argument)."""
    @intrinsic
    def mix(typingctx, planes, channels, weights, out):
        sig = types.void(planes, channels, weights, out)

        def codegen(context, builder, signature, args):
            pdata, wdata, odata = (_data(context, builder, signature.args[i], args[i]) for i in (0, 2, 3))
            channels_v = context.cast(builder, args[1], signature.args[1], types.intp)
            if variant is None:
                pairs = _tile_sums(context, builder, types.float32, pdata, _const(0), _const(ROW), _const(PLANE),
                                   channels_v, wdata, _const(0), odata)
                sums = [v for pair in pairs for v in pair]
            else:
                sums = _variant_sums(context, builder, pdata, channels_v, wdata, *VARIANTS[variant])
            vec = ir.VectorType(ir.FloatType(), LANES)
            for i, value in enumerate(sums):
                ptr = builder.bitcast(_at(builder, odata, _const(LANES * i)), vec.as_pointer())
                builder.store(builder.fadd(builder.load(ptr, align=1), value), ptr, align=1)
            return context.get_dummy_value()

        return sig, codegen
    return mix


def _mix_loop(variant):
    """A compiled loop of `reps` calls of the variant's accumulation."""
    mix = _mix_intrinsic(variant)

    @njit
    def loop(planes, channels, weights, out, reps):
        for _ in range(reps):
            mix(planes, channels, weights, out)
    return loop


def measure(ceilings, work=3e5):
    """Every variant's executed multiply-adds as a fraction of the peak loop's: all variants and the
    peak loop are called one after the other in each round, and each fraction is the median of its
    rounds' ratios (the host's speed drifts within seconds)."""
    rng = np.random.default_rng(0)
    planes = rng.random(CHANNELS * 2 * PLANE + LANES, dtype=np.float32)
    weights = rng.random(OUTPUTS * CHANNELS * 12, dtype=np.float32)
    out = np.zeros(16 * LANES, np.float32)
    reps = int(work / CHANNELS)
    loops = {name: _mix_loop(None if name == "tile loop" else name) for name in ["tile loop", *VARIANTS]}
    calls = {name: (lambda loop=loop: loop(planes, CHANNELS, weights, out, reps)) for name, loop in loops.items()}
    seconds = alternating_times({"peak": ceilings.peak, **calls}, ROUNDS)
    flops = reps * CHANNELS * 48 * LANES * 2
    peak_rates = [ceilings.flops["peak"] / t / 1e9 for t in seconds["peak"]]
    rows = []
    for name in calls:
        rates = [flops / t / 1e9 for t in seconds[name]]
        rows.append({"variant": name, "ns_per_channel": statistics.median(seconds[name]) / (reps * CHANNELS) * 1e9,
                     "gflops": statistics.median(rates), "peak_gflops": statistics.median(peak_rates),
                     "of_peak": statistics.median(m / p for m, p in zip(rates, peak_rates)),
                     "of_peak_range": [min(m / p for m, p in zip(rates, peak_rates)),
                                       max(m / p for m, p in zip(rates, peak_rates))]})
    return rows


def markdown(rows, tile, load):
    """The table, with the whole tile (pooling included) from bench/tile_peak.py's forward row."""
    lines = [f"The forward tile's inner loop and variants that each change one kind of instruction "
             f"(bench/tile_mix.py): one thread, {CHANNELS} input channels per call on L1-resident planes, 48 "
             f"fused multiply-adds into 16 accumulators per channel in every variant. All variants and the "
             f"core's multiply-add peak loop ({rows[0]['peak_gflops']:.0f} GFLOP/s, median) are called one after "
             f"the other in each of {ROUNDS} rounds; a fraction is the median of its rounds' ratios, with their "
             f"range. The whole tile with its pooling (tile_peak's row, C = 32, L2-resident planes, 7 rounds "
             f"after these): {tile['of_peak']:.2f} of the peak. Load average before / after: {load[0]} / "
             f"{load[1]}.", "",
             "| variant | ns per input channel | GFLOP/s executed | executed multiply-adds / peak | range |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['ns_per_channel']:.2f} | {r['gflops']:.1f} | {r['of_peak']:.2f} | "
              f"{r['of_peak_range'][0]:.2f}-{r['of_peak_range'][1]:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Measure, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="tile_mix")
    args = parser.parse_args(argv)
    numba_blas.pin_to_one_thread("numpy")
    before = load_average()
    ceilings = Ceilings()
    rows = measure(ceilings)
    tile = forward_row(32, ceilings)
    load = (before, load_average())
    text = markdown(rows, tile, load)
    write_result(args.name, {"machine": machine_info(), "load_average": load, "rows": rows, "tile": tile})
    write_markdown(args.name, text)
    print(text)


if __name__ == "__main__":
    main()
