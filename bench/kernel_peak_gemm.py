"""The wide layers (im2col + BLAS) and the dense layers against one core's sgemm.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 1 nice -n -5 \\
        python bench/kernel_peak_gemm.py [--batches 32 256] [--repeats R] [--rounds 4]

In one process, for each of R rounds (--rounds; the host is shared and its load changes by the
second, so the rounds spread the measurement over time): a 1-thread NumPy sgemm (2048 x 2048
float32, 10 calls), then every layer and pass. Reported per layer and pass over the calls of all
rounds: the float32 kernel's ms (median and best), its GFLOP/s and that as a fraction of the sgemm
(median against the median of the rounds' sgemm medians, best against the best sgemm; best is the
steadier of the two).
FLOPs, a multiply-add counting 2 (bench/flops.py):
    conv forward          2 * N * O * C * k*k * H * W
    conv weight grad      the same; conv input grad the same
    dense, per matmul     2 * N * in * out (forward, weight grad, input grad)
The conv backward computes both gradients in one call ("backward", twice the forward's FLOPs);
"backward gw" is the same call without the input gradient. Writes bench/results/kernel_peak_gemm.md.
"""
import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import call_times, machine_info, write_markdown  # noqa: E402
from bench.flops import SGEMM_SIZE, load_average, sgemm_gflops  # noqa: E402
from ops import block_numba  # noqa: E402
from ops.dense import dense_backward_reference, dense_forward_reference  # noqa: E402

# (name, input channels, output channels, input size) of the study's wide blocks at 128 px
CONVS = [("conv4", 16, 32, 16), ("conv5", 32, 64, 8)]
# (name, inputs, outputs) of the dense layers
DENSES = [("dense1", 1024, 256), ("dense2", 256, 256), ("dense3", 256, 1)]


def conv_rows(batch, repeats):
    """(layer, pass, FLOPs, times) of the fused block's forward and backward at one batch size."""
    rows, rng = [], np.random.default_rng(0)
    for name, c, o, size in CONVS:
        x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
        w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        b = np.full(o, 0.01, np.float32)
        y, code = block_numba.conv_relu_pool_forward(x, w, b)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        flops = 2 * batch * o * c * 3 * 3 * size * size
        rows.append((name, "forward", flops,
                     call_times(lambda: block_numba.conv_relu_pool_forward(x, w, b), repeats, warmup=2)))
        rows.append((name, "backward", 2 * flops,
                     call_times(lambda: block_numba.conv_relu_pool_backward(x, w, code, gy), repeats, warmup=2)))
        rows.append((name, "backward gw", flops, call_times(
            lambda: block_numba.conv_relu_pool_backward(x, w, code, gy, need_gx=False), repeats, warmup=2)))
    return rows


def dense_rows(batch, repeats):
    """(layer, pass, FLOPs, times) of each dense layer's forward and backward (ops/dense.py)."""
    rows, rng = [], np.random.default_rng(1)
    for name, n_in, n_out in DENSES:
        x = rng.standard_normal((batch, n_in)).astype(np.float32)
        w = rng.standard_normal((n_out, n_in)).astype(np.float32)
        b = np.zeros(n_out, np.float32)
        gy = rng.standard_normal((batch, n_out)).astype(np.float32)
        flops = 2 * batch * n_in * n_out
        rows.append((name, "forward", flops, call_times(lambda: dense_forward_reference(x, w, b), repeats, warmup=2)))
        backward = call_times(lambda: dense_backward_reference(x, w, gy), repeats, warmup=2)
        rows.append((name, "backward", 2 * flops, backward))
    return rows


def table(batch, rows, sgemm):
    """Markdown rows: ms median / best, GFLOP/s of each, fraction of the sgemm (median, best) of each."""
    lines = []
    for name, kind, flops, times in rows:
        med, best = statistics.median(times), min(times)
        g_med, g_best = flops / med / 1e9, flops / best / 1e9
        lines.append(f"| {batch} | {name} | {kind} | {flops / 1e6:.1f} | {1e3 * med:.3f} | {1e3 * best:.3f} "
                     f"| {g_med:.1f} | {g_best:.1f} | {g_med / sgemm[0]:.2f} | {g_best / sgemm[1]:.2f} |")
    return lines


def main():
    """Measure sgemm and every layer and pass at each batch size, round after round; print and write
    the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--repeats", type=int, default=0, help="timed calls (default: 20 at bs 32, 7 at 256)")
    parser.add_argument("--rounds", type=int, default=4, help="measurement rounds (default 4)")
    parser.add_argument("--name", default="kernel_peak_gemm")
    args = parser.parse_args()
    block_numba.warmup(np.float32)
    load_start = load_average()
    sgemm, times = [], {}
    for _ in range(args.rounds):
        sgemm.append(sgemm_gflops())
        for batch in args.batches:
            repeats = args.repeats or max(7, 640 // batch)
            for name, kind, flops, t in conv_rows(batch, repeats) + dense_rows(batch, repeats):
                times.setdefault((batch, name, kind, flops), []).extend(t)
    ceiling = (statistics.median(m for m, _ in sgemm), max(b for _, b in sgemm))
    lines = []
    for batch in args.batches:
        lines += table(batch, [(name, kind, flops, t) for (b, name, kind, flops), t in times.items()
                               if b == batch], ceiling)
    info = machine_info()
    head = [f"# im2col + BLAS and dense layers against one core's sgemm ({info['date']})", "",
            f"CPU {info.get('cpu', '?')}; NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS')}, "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
            f"GEMM_ROWS={getattr(block_numba, 'GEMM_ROWS', None)}; load average {load_start} at the start, "
            f"{load_average()} at the end.",
            f"NumPy sgemm {SGEMM_SIZE} float32, 1 thread, {args.rounds} rounds: {ceiling[0]:.1f} GFLOP/s median, "
            f"{ceiling[1]:.1f} best (per round: "
            + ", ".join(f"{m:.0f}/{b:.0f}" for m, b in sgemm) + ").", "",
            "| batch | layer | pass | MFLOP | ms median | ms best | GFLOP/s median | GFLOP/s best "
            "| / sgemm median | / sgemm best |", "|---|---|---|---|---|---|---|---|---|---|"]
    text = "\n".join(head + lines) + "\n"
    print(text)
    write_markdown(args.name, text)


if __name__ == "__main__":
    main()
