"""Time the fused VGG block (conv 3x3 + bias + ReLU + 2x2 max-pool), reference vs numba kernels.

Runs forward and backward of the five blocks of the study's net (3x128x128 input) at batch 32 and
256 in float32, prints a table and writes bench/results/kernels.json. Times are the minimum over
repeats (the median is stored too), plus the numba kernels' CPU time on one thread; the machine's
load average is recorded because other processes on the two cores inflate the wall times.
Usage: .venv/bin/python bench/kernels.py [--repeats R]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ops import block_numba  # noqa: E402
from ops.block import conv_relu_pool_backward_reference, conv_relu_pool_reference  # noqa: E402

# (input channels, output channels, input size) of the five blocks
LAYERS = [(3, 4, 128), (4, 8, 64), (8, 16, 32), (16, 32, 16), (32, 64, 8)]
BATCHES = [32, 256]
THREADS = 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "kernels.json")


def _time(fn, repeats, clock=time.perf_counter):
    """(min, median) time of fn() in ms after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append((clock() - start) * 1e3)
    return min(times), statistics.median(times)


def _cpu_one_thread(fn, repeats):
    """Process CPU time of fn() in ms on ONE numba thread: less sensitive than wall time to other
    processes competing for the cores (they inflate it only through shared caches)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return _time(fn, repeats, clock=time.process_time)[0]
    finally:
        numba.set_num_threads(threads)


def _machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "threads": THREADS}


def bench_layer(c, o, size, batch, repeats):
    """Time reference and numba forward/backward of one block; return a result row."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = np.full(o, 0.01, np.float32)
    y, code = block_numba.conv_relu_pool_forward(x, w, b)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    need_gx = c != 3  # the first block's input (the images) needs no gradient
    ref_reps = max(2, repeats // 3) if batch > 64 else repeats
    row = {"layer": f"{c}->{o} @{size}", "batch": batch, "in_channels": c,
           "path": "im2col+BLAS" if c >= block_numba.GEMM_MIN_CHANNELS else "direct"}
    for name, fwd, bwd, reps in (
            ("reference", conv_relu_pool_reference, conv_relu_pool_backward_reference, ref_reps),
            ("numba", block_numba.conv_relu_pool_forward, block_numba.conv_relu_pool_backward,
             repeats)):
        row[f"{name}_fwd_ms"], row[f"{name}_fwd_median_ms"] = _time(lambda: fwd(x, w, b), reps)
        row[f"{name}_bwd_ms"], row[f"{name}_bwd_median_ms"] = _time(
            lambda: bwd(x, w, code, gy, need_gx=need_gx), reps)
    row["numba_fwd_cpu_1thread_ms"] = _cpu_one_thread(lambda: block_numba.conv_relu_pool_forward(
        x, w, b), repeats)
    row["numba_bwd_cpu_1thread_ms"] = _cpu_one_thread(lambda: block_numba.conv_relu_pool_backward(
        x, w, code, gy, need_gx=need_gx), repeats)
    for part in ("fwd", "bwd"):
        row[f"speedup_{part}"] = row[f"reference_{part}_ms"] / row[f"numba_{part}_ms"]
    flops = 2.0 * batch * size * size * o * c * 9
    row["numba_fwd_gflops"] = flops / row["numba_fwd_ms"] / 1e6
    row["numba_bwd_gflops"] = flops * (2 if need_gx else 1) / row["numba_bwd_ms"] / 1e6
    return row


def crossover(batch, repeats):
    """One-thread CPU ms of both numba kernel families on the blocks with 8, 16, 32 input channels:
    where im2col + BLAS starts to beat the direct kernels (block_numba.GEMM_MIN_CHANNELS)."""
    rows = []
    saved = block_numba.GEMM_MIN_CHANNELS
    rng = np.random.default_rng(1)
    try:
        for c, o, size in LAYERS[2:]:
            x = rng.standard_normal((batch, c, size, size)).astype(np.float32)
            w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
            b = np.full(o, 0.01, np.float32)
            row = {"layer": f"{c}->{o} @{size}", "batch": batch}
            for path, threshold in (("direct", 10 ** 9), ("blas", 1)):
                block_numba.GEMM_MIN_CHANNELS = threshold
                y, code = block_numba.conv_relu_pool_forward(x, w, b)
                gy = np.ones_like(y)
                row[f"{path}_fwd_ms"] = _cpu_one_thread(
                    lambda: block_numba.conv_relu_pool_forward(x, w, b), repeats)
                row[f"{path}_bwd_ms"] = _cpu_one_thread(
                    lambda: block_numba.conv_relu_pool_backward(x, w, code, gy), repeats)
            rows.append(row)
            print(f"crossover {row['layer']:>12}: direct fwd {row['direct_fwd_ms']:.2f} bwd "
                  f"{row['direct_bwd_ms']:.2f} | BLAS fwd {row['blas_fwd_ms']:.2f} bwd "
                  f"{row['blas_bwd_ms']:.2f}  (ms, 1-thread CPU, batch {batch})")
    finally:
        block_numba.GEMM_MIN_CHANNELS = saved
    return rows


def main():
    """Run the benchmark, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    warm = block_numba.warmup(np.float32)
    load_before = os.getloadavg()
    rows = []
    print(f"{'layer':>12} {'batch':>5} {'path':>11} | {'ref fwd':>8} {'numba':>7} {'x':>5} | "
          f"{'ref bwd':>8} {'numba':>7} {'x':>5} | GFLOP/s fwd  bwd | 1-thread CPU ms fwd  bwd")
    for batch in BATCHES:
        for c, o, size in LAYERS:
            r = bench_layer(c, o, size, batch, args.repeats)
            rows.append(r)
            print(f"{r['layer']:>12} {batch:>5} {r['path']:>11} | {r['reference_fwd_ms']:8.2f} "
                  f"{r['numba_fwd_ms']:7.2f} {r['speedup_fwd']:5.1f} | {r['reference_bwd_ms']:8.2f} "
                  f"{r['numba_bwd_ms']:7.2f} {r['speedup_bwd']:5.1f} | "
                  f"{r['numba_fwd_gflops']:11.1f} {r['numba_bwd_gflops']:5.1f} | "
                  f"{r['numba_fwd_cpu_1thread_ms']:20.2f} {r['numba_bwd_cpu_1thread_ms']:5.2f}")
    cross = crossover(BATCHES[0], args.repeats)
    totals = {}
    for batch in BATCHES:
        sel = [r for r in rows if r["batch"] == batch]
        ref = sum(r["reference_fwd_ms"] + r["reference_bwd_ms"] for r in sel)
        fast = sum(r["numba_fwd_ms"] + r["numba_bwd_ms"] for r in sel)
        cpu1 = sum(r["numba_fwd_cpu_1thread_ms"] + r["numba_bwd_cpu_1thread_ms"] for r in sel)
        totals[str(batch)] = {"reference_ms": ref, "numba_ms": fast, "speedup": ref / fast,
                              "numba_cpu_1thread_ms": cpu1}
        print(f"batch {batch}: all five blocks fwd+bwd  reference {ref:.1f} ms, numba {fast:.1f} ms "
              f"({ref / fast:.1f}x); numba on one thread {cpu1:.1f} ms CPU")
    result = {"machine": _machine(), "dtype": "float32", "warmup_seconds": warm,
              "blas_from_channels": block_numba.GEMM_MIN_CHANNELS,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "timing": "min over repeats of wall time, ms, 2 threads (numba and NumPy's "
              "BLAS); *_cpu_1thread_ms: min process CPU time on one numba thread",
              "layers": rows, "totals": totals, "crossover": cross}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
