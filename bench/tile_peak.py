"""The direct kernels' register tiles alone, on cache-resident data, against one thread's sgemm and
the core's multiply-add peak.

    nice -n -5 python bench/tile_peak.py

bench/kernel_peak.py times whole direct blocks (copies, pooling, loops and tiles); this times only the
two tiles that do their multiply-adds, called back to back over the same few planes, so the gap between
the two scripts is what the rest of a block costs. On one thread, against two ceilings (Ceilings)
called round by round beside each row's tile calls, so that every fraction is a median of ratios
taken in the same moment of a shared host: NumPy's float32 sgemm (2048^3), the ceiling
bench/step_time.py uses, and the core's fused multiply-add peak (_fma_chains: independent 16-lane
multiply-adds on registers alone, no memory), which also says how far from the hardware sgemm
itself is. The tiles:

    conv3_tile_pool   forward tile: 4 output channels x 16 positions x both rows of a pool window,
                      C input channels, pooled in registers. FLOPs counted as the plain 3x3
                      convolution's (4 x 2 x 16 x C x 9 x 2 per call); it does 2/3 of them as
                      Winograd F(2, 3) sums, so it can pass sgemm's rate; against the
                      multiply-add peak it is credited with the 2/3 it executes.
    corr3_tile_pair   weight-gradient tile: 2 output channels x 1 input channel x 9 taps over n
                      flat positions, 36 fused multiply-adds per 16 positions (exact FLOPs).

Why: on an Intel Xeon (Emerald Rapids) the blocks ran at 0.39-0.63 of sgemm against 0.55-0.95 on AMD
Zen 4 (bench/results/emeraldrapids/kernel_peak.md); this splits the tiles from the rest. Writes
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
from bench.flops import SGEMM_SIZE, load_average  # noqa: E402
from ops import numba_blas  # noqa: E402
from ops.numba_tile import LANES, OUTPUTS, _data, _fma, conv3_tile_pool, corr3_tile_pair  # noqa: E402

# The loops below are compiled afresh on every run, not kept in numba's on-disk cache: a cached
# copy is keyed to this file alone and would go on timing the tiles of an older ops/numba_tile.py.
WIDTH = 130  # padded row stride of the planes (conv1's at 128 px)
FORWARD_TILES = 64  # tiles per channel plane pass: 1,024 flat positions
SUMS = 2 * 9 * LANES  # one output pair's partial-sum lanes per input channel
# Independent multiply-add chains of the peak loop: two pipes of 4 cycles' latency need 8 in flight
# to stay busy; 16 leaves slack and still fits the 32 vector registers.
CHAINS = 16
WINOGRAD_SHARE = 2 / 3  # multiply-adds the forward tile executes per plain-convolution one (48 of 72)
ROUNDS = 7  # timed rounds per row, each: one sgemm, one multiply-add loop, one batch of tile calls


@intrinsic
def _fma_chains(typingctx, rounds, seeds):
    """rounds x CHAINS 16-lane fused multiply-adds acc_i = a * b + acc_i on registers only (a, b and
    the CHAINS accumulators start from seeds[0: (CHAINS + 2) * 16]); the accumulators' sum goes to
    seeds[0:16] so that the loop cannot be dropped."""
    if not (isinstance(rounds, types.Integer) and isinstance(seeds, types.Array) and seeds.dtype == types.float32):
        return None
    sig = types.void(rounds, seeds)

    def codegen(context, builder, signature, args):
        rounds_v = context.cast(builder, args[0], signature.args[0], types.intp)
        data = _data(context, builder, signature.args[1], args[1])
        vec = ir.VectorType(ir.FloatType(), LANES)
        fma = _fma(builder, vec)

        def seed(i):
            ptr = builder.gep(data, [ir.Constant(ir.IntType(64), LANES * i)])
            return builder.load(builder.bitcast(ptr, vec.as_pointer()), align=1)
        a, b = seed(0), seed(1)
        accs = [cgutils.alloca_once(builder, vec) for _ in range(CHAINS)]
        for i, acc in enumerate(accs):
            builder.store(seed(2 + i), acc)
        with cgutils.for_range(builder, rounds_v):
            for acc in accs:
                builder.store(builder.call(fma, [a, b, builder.load(acc)]), acc)
        total = builder.load(accs[0])
        for acc in accs[1:]:
            total = builder.fadd(total, builder.load(acc))
        builder.store(total, builder.bitcast(data, vec.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


@njit
def _fma_rounds(rounds, seeds):
    """_fma_chains as a compiled call (the intrinsic only runs inside numba code)."""
    _fma_chains(rounds, seeds)


class Ceilings:
    """The two ceilings as calls timed beside every tile: NumPy's float32 sgemm (SGEMM_SIZE^3) and
    the multiply-add loop (_fma_chains: `rounds` x CHAINS x 16 lanes)."""

    def __init__(self, rounds=400_000):
        rng = np.random.default_rng(0)
        self.a, self.b = (rng.random((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32) for _ in range(2))
        self.out = np.empty_like(self.a)
        self.seeds = rng.random((CHAINS + 2) * LANES, dtype=np.float32) * 1e-3
        self.rounds = rounds
        self.flops = {"sgemm": 2.0 * SGEMM_SIZE ** 3, "peak": 2.0 * rounds * CHAINS * LANES}

    def sgemm(self):
        """One float32 matrix product (NumPy's BLAS)."""
        np.matmul(self.a, self.b, out=self.out)

    def peak(self):
        """One run of the multiply-add loop."""
        _fma_rounds(self.rounds, self.seeds)


@njit
def _forward_tiles(planes, plane_len, channels, weights, init, values, codes, tiles, reps):
    for _ in range(reps):
        for t in range(tiles):
            conv3_tile_pool(planes, t * LANES, WIDTH, plane_len, channels, weights, 0, init, values, codes,
                            tiles, 0, 255, 0, 0)


@njit
def _gradient_tiles(grads, planes, sums, n, plane_len, channels, reps):
    for _ in range(reps):
        for ci in range(channels):
            corr3_tile_pair(grads, 0, plane_len, 2 * plane_len, planes, 2 * ci * plane_len, WIDTH, plane_len, n,
                            sums, ci * SUMS, channels * SUMS)


def paired_fractions(tile, sgemm, peak, executed):
    """From the rates of each round (GFLOP/s of the tile, sgemm and the multiply-add loop, timed one
    after the other): the medians of tile / sgemm, of the tile's executed multiply-adds / peak, and
    of sgemm / peak. Ratios taken round by round cancel the host's slower drifts."""
    return (statistics.median(t / s for t, s in zip(tile, sgemm)),
            statistics.median(t * executed / p for t, p in zip(tile, peak)),
            statistics.median(s / p for s, p in zip(sgemm, peak)))


def measure(row, call, calls, flops, ceilings):
    """Time `call` (`calls` tile calls doing `flops` plain FLOPs) ROUNDS times, each round beside one
    sgemm and one multiply-add loop; fill `row` with the medians and the paired fractions."""
    seconds = alternating_times({"sgemm": ceilings.sgemm, "peak": ceilings.peak, "tile": call}, ROUNDS)
    work = {**ceilings.flops, "tile": flops}
    rates = {name: [work[name] / t / 1e9 for t in times] for name, times in seconds.items()}
    row["ns_per_call"] = statistics.median(seconds["tile"]) / calls * 1e9
    row["gflops"], row["sgemm_gflops"], row["peak_gflops"] = (statistics.median(rates[name])
                                                              for name in ("tile", "sgemm", "peak"))
    row["of_sgemm"], row["of_peak"], row["sgemm_of_peak"] = paired_fractions(rates["tile"], rates["sgemm"],
                                                                            rates["peak"], row["executed"])
    return row


def forward_row(channels, ceilings, work=2e5):
    """The forward tile over C input channels, with plain-convolution GFLOP/s."""
    rng = np.random.default_rng(channels)
    plane_len = FORWARD_TILES * LANES + 4 * WIDTH
    planes = rng.random(channels * 2 * plane_len, dtype=np.float32)
    weights = rng.random(OUTPUTS * channels * 12, dtype=np.float32)
    init = np.zeros(OUTPUTS, np.float32)
    values = np.zeros(OUTPUTS * FORWARD_TILES, np.float32)
    codes = np.zeros(OUTPUTS * FORWARD_TILES, np.uint8)
    reps = max(1, int(work / (channels * FORWARD_TILES)))
    calls = reps * FORWARD_TILES
    row = {"tile": "conv3_tile_pool", "shape": f"C = {channels}", "executed": WINOGRAD_SHARE,
           "kib": planes.nbytes / 1024}
    return measure(row, lambda: _forward_tiles(planes, plane_len, channels, weights, init, values, codes,
                                               FORWARD_TILES, reps), calls,
                   calls * OUTPUTS * 2 * LANES * channels * 9 * 2, ceilings)


def gradient_row(n, ceilings, channels=4, work=4e6):
    """The weight-gradient tile over n flat positions (exact GFLOP/s)."""
    rng = np.random.default_rng(n)
    plane_len = n + 2 * WIDTH + 2 * LANES
    grads = rng.random(4 * plane_len + 2 * LANES, dtype=np.float32)
    planes = rng.random(channels * 2 * plane_len + 2 * LANES, dtype=np.float32)
    sums = np.zeros(2 * channels * SUMS, np.float32)
    reps = max(1, int(work / (n * channels)))
    calls = reps * channels
    row = {"tile": "corr3_tile_pair", "shape": f"n = {n}", "executed": 1.0,
           "kib": (grads.nbytes + planes.nbytes) / 1024}
    return measure(row, lambda: _gradient_tiles(grads, planes, sums, n, plane_len, channels, reps), calls,
                   calls * 36 * 2 * n, ceilings)


def _span(rows, key):
    values = [r[key] for r in rows]
    return f"{min(values):.0f}-{max(values):.0f}" if key.endswith("gflops") else f"{min(values):.2f}-{max(values):.2f}"


def markdown(rows, load):
    """The table: per tile and shape, ns per call, GFLOP/s, and the paired fractions of sgemm and of
    the multiply-add peak (its executed multiply-adds)."""
    lines = [f"The register tiles alone on one thread, cache-resident data (bench/tile_peak.py). Each row's calls "
             f"alternate, round by round ({ROUNDS} rounds), with two ceilings in the same process: NumPy float32 "
             f"sgemm ({_span(rows, 'sgemm_gflops')} GFLOP/s, the rows' medians) and the core's multiply-add peak "
             f"({_span(rows, 'peak_gflops')} GFLOP/s: {CHAINS} independent 16-lane fused multiply-adds on "
             f"registers); the fractions are medians of the rounds' ratios. sgemm itself runs at "
             f"{_span(rows, 'sgemm_of_peak')} of the peak. Load average before / after: {load[0]} / {load[1]}.", "",
             "| tile | shape | ns per call | GFLOP/s | fraction of sgemm | executed multiply-adds / peak | data KiB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['tile']} | {r['shape']} | {r['ns_per_call']:.1f} | {r['gflops']:.1f} | {r['of_sgemm']:.2f} | "
              f"{r['of_peak']:.2f} | {r['kib']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Measure, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="tile_peak")
    args = parser.parse_args(argv)
    # the ceiling on one thread too (an idle OpenBLAS thread spinning on the other vCPU also slowed
    # the tiles by up to 1.4x on the Xeon, whose two vCPUs share a core)
    numba_blas.pin_to_one_thread("numpy")
    before = load_average()
    ceilings = Ceilings()
    rows = ([forward_row(c, ceilings) for c in (3, 8, 16, 32)]
            + [gradient_row(n, ceilings) for n in (256, 1024, 2048)])
    load = (before, load_average())
    text = markdown(rows, load)
    write_result(args.name, {"machine": machine_info(), "load_average": load, "rows": rows})
    write_markdown(args.name, text)
    print(text)


if __name__ == "__main__":
    main()
