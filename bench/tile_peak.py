"""The direct kernels' register tiles alone, on cache-resident data, against one thread's sgemm.

    nice -n -5 python bench/tile_peak.py

bench/kernel_peak.py times whole direct blocks (copies, pooling, loops and tiles); this times only the
two tiles that do their multiply-adds, called back to back over the same few planes, so the gap between
the two scripts is what the rest of a block costs. On one thread, against NumPy's float32 sgemm
(2048^3) timed in the same process:

    conv3_tile_pool   forward tile: 4 output channels x 16 positions x both rows of a pool window,
                      C input channels, pooled in registers. FLOPs counted as the plain 3x3
                      convolution's (4 x 2 x 16 x C x 9 x 2 per call); it does 2/3 of them as
                      Winograd F(2, 3) sums, so it can pass sgemm's rate.
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
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import call_times, machine_info, write_markdown, write_result  # noqa: E402
from bench.flops import load_average, sgemm_gflops  # noqa: E402
from ops import numba_blas  # noqa: E402
from ops.numba_tile import LANES, OUTPUTS, conv3_tile_pool, corr3_tile_pair  # noqa: E402

WIDTH = 130  # padded row stride of the planes (conv1's at 128 px)
FORWARD_TILES = 64  # tiles per channel plane pass: 1,024 flat positions
SUMS = 2 * 9 * LANES  # one output pair's partial-sum lanes per input channel


@njit(cache=True)
def _forward_tiles(planes, plane_len, channels, weights, init, values, codes, tiles, reps):
    for _ in range(reps):
        for t in range(tiles):
            conv3_tile_pool(planes, t * LANES, WIDTH, plane_len, channels, weights, 0, init, values, codes,
                            tiles, 0, 255, 0, 0)


@njit(cache=True)
def _gradient_tiles(grads, planes, sums, n, plane_len, channels, reps):
    for _ in range(reps):
        for ci in range(channels):
            corr3_tile_pair(grads, 0, plane_len, 2 * plane_len, planes, 2 * ci * plane_len, WIDTH, plane_len, n,
                            sums, ci * SUMS, channels * SUMS)


def _median_seconds(fn):
    """Median of 7 timed calls (bench.common.call_times: one warm-up call first)."""
    return statistics.median(call_times(fn, 7))


def forward_row(channels, work=2e5):
    """The forward tile over C input channels: seconds per call and plain-convolution GFLOP/s."""
    rng = np.random.default_rng(channels)
    plane_len = FORWARD_TILES * LANES + 4 * WIDTH
    planes = rng.random(channels * 2 * plane_len, dtype=np.float32)
    weights = rng.random(OUTPUTS * channels * 12, dtype=np.float32)
    init = np.zeros(OUTPUTS, np.float32)
    values = np.zeros(OUTPUTS * FORWARD_TILES, np.float32)
    codes = np.zeros(OUTPUTS * FORWARD_TILES, np.uint8)
    reps = max(1, int(work / (channels * FORWARD_TILES)))
    seconds = _median_seconds(lambda: _forward_tiles(planes, plane_len, channels, weights, init, values, codes,
                                                     FORWARD_TILES, reps)) / (reps * FORWARD_TILES)
    flops = OUTPUTS * 2 * LANES * channels * 9 * 2
    return {"tile": "conv3_tile_pool", "shape": f"C = {channels}", "ns_per_call": seconds * 1e9,
            "gflops": flops / seconds / 1e9, "kib": planes.nbytes / 1024}


def gradient_row(n, channels=4, work=4e6):
    """The weight-gradient tile over n flat positions: seconds per call and GFLOP/s."""
    rng = np.random.default_rng(n)
    plane_len = n + 2 * WIDTH + 2 * LANES
    grads = rng.random(4 * plane_len + 2 * LANES, dtype=np.float32)
    planes = rng.random(channels * 2 * plane_len + 2 * LANES, dtype=np.float32)
    sums = np.zeros(2 * channels * SUMS, np.float32)
    reps = max(1, int(work / (n * channels)))
    seconds = _median_seconds(lambda: _gradient_tiles(grads, planes, sums, n, plane_len, channels, reps))
    seconds /= reps * channels
    flops = 36 * 2 * n
    return {"tile": "corr3_tile_pair", "shape": f"n = {n}", "ns_per_call": seconds * 1e9,
            "gflops": flops / seconds / 1e9, "kib": (grads.nbytes + planes.nbytes) / 1024}


def markdown(rows, sgemm, load):
    """The table: per tile and shape, ns per call, GFLOP/s and the fraction of sgemm."""
    lines = [f"The register tiles alone on one thread, cache-resident data (bench/tile_peak.py). Ceiling: "
             f"NumPy float32 sgemm {sgemm:.1f} GFLOP/s (median), same process. Load average before / after: "
             f"{load[0]} / {load[1]}.", "",
             "| tile | shape | ns per call | GFLOP/s | fraction of sgemm | data KiB |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['tile']} | {r['shape']} | {r['ns_per_call']:.1f} | {r['gflops']:.1f} | "
              f"{r['gflops'] / sgemm:.2f} | {r['kib']:.0f} |" for r in rows]
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
    sgemm = sgemm_gflops()[0]
    rows = [forward_row(c) for c in (3, 8, 16, 32)] + [gradient_row(n) for n in (256, 1024, 2048)]
    load = (before, load_average())
    text = markdown(rows, sgemm, load)
    write_result(args.name, {"machine": machine_info(), "sgemm_gflops": sgemm, "load_average": load, "rows": rows})
    write_markdown(args.name, text)
    print(text)


if __name__ == "__main__":
    main()
