"""The direct conv kernels (conv1-conv3 of the study's net) as a fraction of the same run's sgemm.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 nice -n -5 python bench/kernel_peak.py

Meant to run on ONE thread pinned to one core: the process first times NumPy's float32 2048 x 2048
matrix product with its BLAS threads (median of 10), then each fused block that takes the direct
kernels (fewer than block_numba.GEMM_MIN_CHANNELS input channels), per pass, at batch 32 and 256:

    forward        conv + bias + ReLU + pool            2 * N * O * C * k^2 * H * W FLOPs
    weight grad    backward with need_gx=False          the same
    backward       weight grad + input grad             twice that (conv1's images need no input
                                                        gradient, so there it is the weight grad)

The FLOPs are the useful multiply-adds of the 'same' convolution (a multiply-add counts 2); pool,
bias, ReLU and the kernels' extra work (pad columns, layout copies) are not counted, so they show up
as a lower rate. Prints ms median and best, GFLOP/s from the median and the fraction of sgemm;
writes bench/results/kernel_peak.json and .md with the thread count and load average.
"""
import argparse
import os
import statistics
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import machine_info, write_result, write_markdown  # noqa: E402
from bench.flops import SGEMM_SIZE, load_average, sgemm_gflops  # noqa: E402
from ops import block_numba  # noqa: E402

# (layer, input channels, output channels, input size) of the study's first three blocks
LAYERS = [("conv1", 3, 4, 128), ("conv2", 4, 8, 64), ("conv3", 8, 16, 32)]
BATCHES = [32, 256]
K = 3


def conv_flops(batch, c, o, size, k=K):
    """Multiply-adds x 2 of one pass of a k x k 'same' convolution over a size x size plane."""
    return 2 * batch * o * c * k * k * size * size


def _times(fn, repeats):
    """(median wall, best wall, best CPU) ms of fn() after two untimed calls. On a shared host the
    CPU time of this one-thread process leaves out the time other processes held the core."""
    fn()
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return statistics.median(wall), min(wall), min(cpu)


def bench_layer(name, c, o, size, batch, repeats, sgemm, sgemm_best):
    """Rows (one per pass) for one direct block at one batch size."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((o, c, K, K)) / np.sqrt(K * K * c)).astype(np.float32)
    b = np.full(o, 0.01, np.float32)
    y, code = block_numba.conv_relu_pool_forward(x, w, b)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    one = conv_flops(batch, c, o, size)
    need_gx = name != "conv1"
    passes = [("forward", lambda: block_numba.conv_relu_pool_forward(x, w, b), one),
              ("weight grad", lambda: block_numba.conv_relu_pool_backward(x, w, code, gy, need_gx=False),
               one)]
    if need_gx:
        passes.append(("backward", lambda: block_numba.conv_relu_pool_backward(x, w, code, gy), 2 * one))
    rows = []
    for part, fn, flops in passes:
        med, best, cpu = _times(fn, repeats)
        gflops = flops / med / 1e6
        rows.append({"layer": name, "shape": f"{c}->{o} @{size}", "batch": batch, "pass": part,
                     "flops": flops, "median_ms": med, "best_ms": best, "best_cpu_ms": cpu,
                     "gflops": gflops, "best_gflops": flops / best / 1e6,
                     "fraction_of_sgemm": gflops / sgemm, "best_fraction": flops / best / 1e6 / sgemm_best})
    return rows


def _markdown(result):
    """The result as a markdown table with its conditions."""
    lines = [f"sgemm {SGEMM_SIZE}^3 float32: {result['sgemm_gflops']:.1f} GFLOP/s median "
             f"({result['sgemm_best_gflops']:.1f} best), {result['threads']} numba thread(s), "
             f"BLAS threads {result['blas_threads']}; load average {result['load_before']} before, "
             f"{result['load_after']} after; {result['machine'].get('cpu')} ({result['machine'].get('llvm_cpu')})",
             "", "GFLOP/s and 'of sgemm' from the median times; 'best' compares the best kernel time with "
             "the best sgemm time; 'CPU ms' is the best process CPU time (excludes time the core was taken).",
             "", "| layer | batch | pass | MFLOP | ms median | ms best | CPU ms | GFLOP/s | of sgemm | best of sgemm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['layer']} {r['shape']} | {r['batch']} | {r['pass']} | {r['flops'] / 1e6:.1f} | "
                     f"{r['median_ms']:.2f} | {r['best_ms']:.2f} | {r['best_cpu_ms']:.2f} | {r['gflops']:.1f} | "
                     f"{r['fraction_of_sgemm']:.2f} | {r['best_fraction']:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    """Measure sgemm, then every direct block and pass; print and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    ap.add_argument("--layers", nargs="+", default=[name for name, *_ in LAYERS])
    ap.add_argument("--name", default="kernel_peak", help="result name under bench/results ('' = none)")
    args = ap.parse_args()
    block_numba.warmup(np.float32)
    load_before = load_average()
    sgemm, sgemm_best = sgemm_gflops()
    print(f"sgemm {sgemm:.1f} GFLOP/s median ({sgemm_best:.1f} best); numba threads "
          f"{numba.get_num_threads()}; load {load_before}")
    print(f"{'layer':>16} {'batch':>5} {'pass':>11} | {'ms med':>7} {'best':>7} {'cpu':>7} | {'GFLOP/s':>7} "
          f"{'of sgemm':>8} {'best':>5}")
    rows = []
    for name, c, o, size in LAYERS:
        if name not in args.layers or c >= block_numba.GEMM_MIN_CHANNELS:
            continue
        for batch in args.batches:
            for r in bench_layer(name, c, o, size, batch, args.repeats, sgemm, sgemm_best):
                rows.append(r)
                print(f"{name + ' ' + r['shape']:>16} {batch:>5} {r['pass']:>11} | {r['median_ms']:7.2f} "
                      f"{r['best_ms']:7.2f} {r['best_cpu_ms']:7.2f} | {r['gflops']:7.1f} "
                      f"{r['fraction_of_sgemm']:8.2f} {r['best_fraction']:5.2f}")
    result = {"machine": machine_info(),
              "threads": numba.get_num_threads(),
              "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
              "sgemm_gflops": sgemm, "sgemm_best_gflops": sgemm_best,
              "load_before": load_before, "load_after": load_average(), "rows": rows}
    print(f"load {result['load_after']} after")
    if args.name:
        write_result(args.name, result)
        write_markdown(args.name, _markdown(result))
        print(f"wrote bench/results/{args.name}.json and .md")


if __name__ == "__main__":
    main()
