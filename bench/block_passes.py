"""Where each fused conv block's time goes: its multiply-adds against the passes that move data.

    python bench/block_passes.py [--batch 256] [--threads 1] [--image-size 128] [--min-seconds 1]

For every conv block of the study's net (random weights; each block's input is the previous block's
output, the first block's is uint8 pixels), on one batch: the whole fused forward and backward as
the model calls them (ops.block_numba, one block at a time), then each pass that only moves data,
timed ALONE over the same batch with the kernels' own helpers and scratch:

    direct blocks (conv1-conv3)  copy into the padded parity planes (forward and again in backward),
                                 pooling from the accumulator rows and unpacking the input gradient
                                 from them (neither where ops/numba_tile.py's tiles write the
                                 outputs themselves), the pooled-gradient scatter (with the
                                 bias-gradient sum)
    Winograd blocks (conv5)      column-parity copy + input transform, output transform + pooling,
                                 gradient transform (with the bias-gradient sum), input-gradient
                                 transform, and the GEMMs (np.dot on the same shapes)

"multiply-adds (the rest)" is the whole pass minus those parts: for the direct blocks, the vector
loops of multiply-adds plus what the parts miss (accumulator set-up, loop overhead); its GFLOP/s
against NumPy's sgemm on the same threads, measured in the same process right before, is how close
the arithmetic itself runs to the machine's ceiling. For the Winograd blocks the GEMMs are timed
themselves. Timings are medians over at least --min-seconds of calls. The parts run alone, so they
meet the caches differently than inside the block (and inside it they may overlap the arithmetic):
the rest is an estimate of the multiply-adds' time, not a bound; a rate above sgemm's says a part
costs less inside the block than alone, or fewer multiply-adds: GFLOP/s count the plain
convolution's FLOPs, and the direct tiles' forward and input gradient compute Winograd F(2, 3) sums
(4 multiply-adds down a kernel column where the plain sums take 6), the Winograd blocks' GEMMs
F(2x2, 3x3) products (16 per window where the plain sums take 36). Writes bench/results/NAME.json
and NAME.md.
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parallel.threads import configure_threads  # noqa: E402  (sets thread variables before numpy loads)


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="least total time of the timed calls of each measurement (default 1)")
    parser.add_argument("--name", default="block_passes")
    return parser


if __name__ == "__main__":
    ARGS = _parser().parse_args()
    configure_threads(ARGS.threads)

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from bench.common import call_times, machine_info, write_result, write_markdown  # noqa: E402
from bench.flops import layer_flops, load_average, sgemm_gflops  # noqa: E402
from ops import block_numba, numba_blas, numba_direct, numba_gemm, numba_winograd  # noqa: E402


# --- the data-moving passes alone, over the batch, one sample after another (one thread) ---
# (compiled afresh on every run, not kept in numba's on-disk cache: a cached copy is keyed to this
# file alone and would go on timing an older ops/numba_direct.py's passes)

@njit
def _parity_copies(x, pad, p, wp):
    for s in range(x.shape[0]):
        numba_direct._to_parity(x[s], pad, p, wp)


@njit
def _direct_pools(acc, wp, y, code, block):
    n, o, h2, _ = y.shape
    for s in range(n):
        for r0 in range(0, h2, block):
            nr = min(block, h2 - r0)
            for oi in range(o):
                numba_direct._pool(acc[0], acc[1], wp, y[s, oi, r0:r0 + nr], code[s, oi, r0:r0 + nr])


@njit
def _direct_scatters(code, gy, gpad, p, wp):
    total = 0.0
    for s in range(code.shape[0]):
        for oi in range(code.shape[1]):
            total += numba_direct._scatter(code[s, oi], gy[s, oi], gpad[oi], p, wp)
    return total


@njit
def _direct_unpacks(acc, wp, gx, gx_block):
    n, c, h, _ = gx.shape
    for s in range(n):
        for r0 in range(0, (h + 1) // 2, gx_block):
            nr = min(gx_block, (h + 1) // 2 - r0)
            for ci in range(c):
                numba_direct._unpack_rows(acc[0], acc[1], wp, r0, nr, gx[s, ci])


@njit
def _input_transforms(x, xh, e, v, stack):
    """Per sample: the column-parity copy, then its windows' input transforms at the sample's place."""
    h2, w2 = x.shape[2] // 2, x.shape[3] // 2
    for s in range(x.shape[0]):
        numba_winograd.to_column_parity(x[s], xh)
        numba_winograd._input_tiles(xh, e, v, (s % stack) * h2 * w2, h2, w2)


@njit
def _output_pools(m, b, y, code, stack):
    per = y.shape[2] * y.shape[3]
    for s in range(y.shape[0]):
        numba_winograd._pool_tiles(m, (s % stack) * per, b, y[s], code[s])


@njit
def _gradient_transforms(code, gy, factors, ct, gt, mg, gb, stack):
    per = code.shape[2] * code.shape[3]
    for s in range(code.shape[0]):
        numba_winograd._gradient_tiles(code[s], gy[s], factors, ct, gt, mg, (s % stack) * per, gb)


@njit
def _patch_transforms(dv, e, gh, gx, stack):
    per = (gx.shape[2] // 2) * (gx.shape[3] // 2)
    for s in range(gx.shape[0]):
        numba_winograd._patch_gradients(dv, e, (s % stack) * per, gh, gx[s])


@njit
def _forward_products(v, u, m, rows, groups):
    for _ in range(groups):
        for xi in range(16):
            np.dot(numba_gemm.matrix_rows(v[xi], rows), u[xi], numba_gemm.matrix_rows(m[xi], rows))


@njit
def _backward_products(v, mg, u, dv, prod, wg, rows, groups, need_gx):
    for _ in range(groups):
        for xi in range(16):
            np.dot(numba_gemm.matrix_rows(v[xi], rows).T, numba_gemm.matrix_rows(mg[xi], rows), prod)
            wg[xi] += prod
        if need_gx:
            for xi in range(16):
                np.dot(numba_gemm.matrix_rows(mg[xi], rows), u[xi].T, numba_gemm.matrix_rows(dv[xi], rows))


# --- measurement ---

def _median_ms(fn, min_seconds):
    """Median wall time of fn() in ms over at least 3 calls and min_seconds, after one warm-up."""
    return 1e3 * statistics.median(call_times(fn, repeats=3, min_seconds=min_seconds))


def direct_parts(x, w, code, gy, need_gx, timed):
    """{part: ms} of a direct block's data-moving passes, each alone over the batch."""
    n, c, h, wd = x.shape
    k = w.shape[2]
    p, wp = k // 2, wd + 2 * (k // 2)
    dtype = w.dtype
    xpad, acc, block = block_numba._forward_scratch(x.shape, w.shape, 1, dtype)
    y = np.empty(gy.shape, dtype)
    codes = np.empty(gy.shape, np.uint8)
    _, gpad, bacc, _, gx_block, _ = block_numba._backward_scratch(x.shape, w.shape, 1, dtype)
    parts = {"forward: copy into padded planes": timed(lambda: _parity_copies(x, xpad[0], p, wp))}
    if not numba_direct.pools_in_tile(w.shape[0], k, wp, wd // 2):
        parts["forward: pooling"] = timed(lambda: _direct_pools(acc[0], wp, y, codes, block))
    parts["backward: copy into padded planes"] = timed(lambda: _parity_copies(x, xpad[0], p, wp))
    parts["backward: gradient scatter"] = timed(lambda: _direct_scatters(code, gy, gpad[0], p, wp))
    if need_gx and not numba_direct.gradient_in_tile(c, k, wp):  # the tile writes the planes itself
        gx = np.empty(x.shape, dtype)
        parts["backward: input-gradient unpack"] = timed(lambda: _direct_unpacks(bacc[0], wp, gx, gx_block))
    return parts


def winograd_parts(x, w, b, code, gy, need_gx, timed):
    """{part: ms} of a Winograd block's transforms and products, each alone over the batch, on the
    block's own scratch (one thread's)."""
    n, c, h, wd = x.shape
    o, dtype = w.shape[0], w.dtype
    stack, *scratch = block_numba._winograd_scratch(x.shape, o, 1, dtype)
    xh, e, v, m = (part[0] for part in scratch)  # one thread's
    tiles = stack * (h // 2) * (wd // 2)
    groups = -(-n // stack)
    u = numba_winograd.winograd_filters(w)
    dv = np.zeros_like(v)
    ct = np.zeros(((h // 2) * (wd // 2), o), np.uint8)
    gt = np.zeros(ct.shape, dtype)
    y, codes = np.empty(gy.shape, dtype), np.empty(gy.shape, np.uint8)
    gh, gx = np.zeros_like(xh), np.empty(x.shape, dtype)
    gb, prod, wg = np.zeros(o, dtype), np.zeros((c, o), dtype), np.zeros((16, c, o), dtype)
    factors = numba_winograd.winner_factors(dtype)
    parts = {
        "forward: column-parity copy + input transform": timed(lambda: _input_transforms(x, xh, e, v, stack)),
        "forward: GEMMs (16 per group)": timed(lambda: _forward_products(v, u, m, tiles, groups)),
        "forward: output transform + pooling": timed(lambda: _output_pools(m, b, y, codes, stack)),
        "backward: column-parity copy + input transform": timed(lambda: _input_transforms(x, xh, e, v, stack)),
        "backward: gradient transform": timed(lambda: _gradient_transforms(code, gy, factors, ct, gt, m, gb, stack)),
        "backward: GEMMs (16 or 32 per group)": timed(
            lambda: _backward_products(v, m, u, dv, prod, wg, tiles, groups, need_gx)),
    }
    if need_gx:
        parts["backward: input-gradient transform"] = timed(lambda: _patch_transforms(dv, e, gh, gx, stack))
    return parts


def measure(batch, image_size, min_seconds):
    """One row per block: whole forward/backward ms, their parts, FLOPs and the sgemm ceiling."""
    from engine.model import ModelConfig
    config = ModelConfig(image_size=image_size)

    def timed(fn):
        return _median_ms(fn, min_seconds)
    rng = np.random.default_rng(0)
    flops = {}
    for layer, kind, count in layer_flops(config, batch):
        flops.setdefault(layer, {"forward": 0, "backward": 0})
        flops[layer]["forward" if kind == "forward" else "backward"] += count
    x = rng.integers(0, 256, (batch, config.in_channels, image_size, image_size), dtype=np.uint8)
    channels, rows = config.in_channels, []
    if numba.get_num_threads() == 1:
        numba_blas.pin_to_one_thread("numpy")  # the ceiling on one thread too
    with numba_blas.single_threaded():
        ceiling, _ = sgemm_gflops()
        for i, out in enumerate(config.filters, start=1):
            fan_in = channels * config.kernel_size ** 2
            w = (rng.standard_normal((out, channels, config.kernel_size, config.kernel_size))
                 * np.sqrt(2.0 / fan_in)).astype(np.float32)
            b = np.zeros(out, np.float32)
            y, code = block_numba.conv_relu_pool_forward(x, w, b)
            gy = rng.standard_normal(y.shape).astype(np.float32)
            need_gx = i > 1
            forward_direct = block_numba.forward_is_direct(x.shape, w.shape)
            backward_direct = block_numba.backward_is_direct(x.shape, w.shape)
            xf = block_numba._input(x, np.float32, direct=forward_direct and backward_direct)
            families = {direct: (direct_parts(xf, w, code, gy, need_gx, timed) if direct
                                 else winograd_parts(xf, w, b, code, gy, need_gx, timed))
                        for direct in {forward_direct, backward_direct}}  # each family's parts timed once
            parts = {name: ms for direct, which in ((forward_direct, "forward"), (backward_direct, "backward"))
                     for name, ms in families[direct].items() if name.startswith(which)}
            kernels = {(True, True): "direct", (False, False): "Winograd + BLAS",
                       (True, False): "direct forward, Winograd + BLAS backward",
                       (False, True): "Winograd + BLAS forward, direct backward"}[forward_direct, backward_direct]
            rows.append({
                "block": f"conv{i}", "kernels": kernels,
                "input": list(x.shape), "flops": flops[f"conv{i}"],
                "forward_ms": timed(lambda: block_numba.conv_relu_pool_forward(x, w, b)),
                "backward_ms": timed(lambda: block_numba.conv_relu_pool_backward(x, w, code, gy, need_gx)),
                "parts_ms": parts})
            x, channels = y, out
    return {"sgemm_gflops": ceiling, "rows": rows}


def _split(row, which):
    """(whole ms, {part: ms} of this pass, ms of the rest, GFLOP/s of the arithmetic)."""
    whole = row[f"{which}_ms"]
    parts = {name.split(": ", 1)[1]: ms for name, ms in row["parts_ms"].items() if name.startswith(which)}
    gemm = sum(ms for name, ms in parts.items() if name.startswith("GEMM"))
    moved = sum(ms for name, ms in parts.items() if not name.startswith("GEMM"))
    rest = whole - moved - gemm
    arithmetic_ms = gemm if gemm else rest
    return whole, parts, rest, row["flops"][which] / arithmetic_ms / 1e6


def markdown(result, batch, threads, load_before, load_after):
    """The report: one table per block pass, then a summary line per block."""
    ceiling = result["sgemm_gflops"]
    lines = [f"Fused conv blocks of the study's net, batch {batch}, {threads} thread(s): the whole forward "
             "and backward against the passes that only move data, each timed alone over the same "
             f"batch (medians). Ceiling: NumPy sgemm {ceiling:.1f} GFLOP/s on the same threads, "
             f"this process. Load average before / after: {load_before} / {load_after}. GFLOP/s count the "
             "plain convolution's FLOPs; the direct forwards and input gradients compute Winograd F(2, 3) "
             "sums (4 multiply-adds down a kernel column where the plain sums take 6) and conv5's GEMMs "
             "Winograd F(2x2, 3x3) products (16 per pool window where the plain sums take 36), so they can "
             "pass sgemm's rate.", "",
             "| block | pass | whole ms | data-moving parts (ms, alone) | their share | "
             "multiply-adds: ms | GFLOP/s | fraction of sgemm |", "|---|---|---|---|---|---|---|---|"]
    moved_total = whole_total = 0.0
    for row in result["rows"]:
        for which in ("forward", "backward"):
            whole, parts, rest, gflops = _split(row, which)
            moved = sum(ms for name, ms in parts.items() if not name.startswith("GEMM"))
            gemm = whole - moved - rest
            listed = ", ".join(f"{name} {ms:.2f}" for name, ms in parts.items() if not name.startswith("GEMM"))
            arithmetic = f"{gemm:.2f} (GEMM alone)" if gemm else f"{rest:.2f} (the rest)"
            lines.append(f"| {row['block']} ({row['kernels']}) | {which} | {whole:.2f} | {listed} | "
                         f"{moved / whole:.0%} | {arithmetic} | {gflops:.1f} | {gflops / ceiling:.2f} |")
            moved_total += moved
            whole_total += whole
    flops = sum(row["flops"]["forward"] + row["flops"]["backward"] for row in result["rows"])
    lines += ["", f"All conv blocks: {whole_total:.1f} ms, of which the data-moving passes alone "
              f"{moved_total:.1f} ms ({moved_total / whole_total:.0%}); the blocks' work at "
              f"{flops / whole_total / 1e6:.1f} GFLOP/s is {flops / whole_total / 1e6 / ceiling:.2f} of sgemm, "
              f"and {flops / (whole_total - moved_total) / 1e6 / ceiling:.2f} if those passes cost nothing."]
    return "\n".join(lines) + "\n"


def main(args):
    """Measure, print and write the report."""
    load_before = load_average()
    result = measure(args.batch, args.image_size, args.min_seconds)
    load_after = load_average()
    report = markdown(result, args.batch, args.threads, load_before, load_after)
    write_result(args.name, {"machine": machine_info(), "batch": args.batch, "threads": args.threads,
                             "image_size": args.image_size, "load_average": [load_before, load_after],
                             **result})
    write_markdown(args.name, report)
    print(report)


if __name__ == "__main__":
    main(ARGS)
