"""Training step and no-grad evaluation of the study's net (128 px) against the machine's sgemm
ceiling, with PyTorch beside it.

    python bench/step_time.py --torch [--batches 32 64 128 256] [--kernels fast] [--repeats 10]
    python bench/step_time.py --device cuda --kernels cuda reference --torch --name step_time_cuda

Every configuration (our engine with a kernel set, or PyTorch in NCHW or channels_last; a training
step = forward + backward + SGD update, or a no-grad evaluation = forward + loss + correct count;
one batch size) runs in a fresh subprocess with the requested threads, so its peak memory is its
own. In that subprocess, right before the configuration and again right after it, NumPy's float32
sgemm on 2048 x 2048 matrices is timed with the same threads (bench.flops.sgemm_gflops): the
ceiling of each row is the higher of the two, measured in the same process seconds from it (a busy
host only ever lowers a measurement, and a ceiling measured low would flatter the row; on --device
cuda there is no ceiling). The timed calls come after 2 warm-up calls (at least `repeats`, and at
least --min-seconds of them, 3 s by default, so that a median does not rest on a tenth of a second
of a noisy host) and give images/s at the median call and at the best; GFLOP/s use the exact
per-layer count of bench/flops.py (37.36 MFLOP per training image, 13.63 per evaluated image at
128 px; the same net in PyTorch does the same work), and the fraction of the ceiling is median
over median and best over best. A host can also burst (an Intel Xeon here read 198-298 GFLOP/s in one
run), so the tables add each median over the run's typical ceiling, the median of all rows' ceilings.
The load average is recorded with every row. Writes bench/results/NAME.json and NAME.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import call_times, machine_info, peak_rss_mb, write_result, write_markdown  # noqa: E402
from bench.flops import load_average, sgemm_gflops, step_flops  # noqa: E402
from parallel.threads import configure_threads  # noqa: E402

WARMUP = 2


def array_module(device):
    """numpy for cpu, cupy for cuda."""
    if device == "cuda":
        import cupy
        return cupy
    import numpy
    return numpy


def engine_call(kernels, train, batch, image_size, device):
    """One training step (train) or one no-grad evaluation of a batch in our engine, as a callable
    that ends by reading the loss back (so a GPU call has finished)."""
    import numpy as np

    from bench.common import study_net_step
    model, _, x, y, step = study_net_step(kernels, batch, image_size, xp=array_module(device))
    if train:
        return step
    y = array_module(device).zeros(batch, dtype=np.float32)
    return lambda: model.evaluate(x, y, batch_size=batch)


def torch_call(memory_format, train, batch, image_size, device):
    """The same net in PyTorch: a training step (SGD), or a no-grad evaluation under inference_mode
    (forward, mean loss, correct count), as a callable that waits for the device."""
    import torch
    from torch import nn
    torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count())))
    from engine.model import ModelConfig
    config = ModelConfig(image_size=image_size)  # the same architecture as our engine's
    layers, channels, k = [], config.in_channels, config.kernel_size
    for filters in config.filters:
        layers += [nn.Conv2d(channels, filters, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    width = channels * config.feature_size() ** 2
    layers.append(nn.Flatten())
    for units in config.dense:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    net = nn.Sequential(*layers, nn.Linear(width, 1))
    net = net.to(device)
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    if memory_format == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, device=device) > 0.5).float()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(net(x), y).backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    def evaluate():
        with torch.inference_mode():
            logits = net(x)
            return float(loss_fn(logits, y)), int(((logits > 0) == (y > 0.5)).sum())
    return step if train else evaluate


def row_figures(spec, times, flops, sgemm):
    """A result row: `spec` plus images/s, GFLOP/s and the fraction of the sgemm ceiling, each at
    the median and at the best of `times` (seconds per call). `sgemm` is (median, best) GFLOP/s or
    None (no ceiling)."""
    row = dict(spec, timed_calls=len(times))
    for name, seconds in (("median", statistics.median(times)), ("best", min(times))):
        gflops = flops / seconds / 1e9
        row[f"seconds_{name}"] = seconds
        row[f"images_per_s_{name}"] = spec["batch"] / seconds
        row[f"gflops_{name}"] = gflops
        row[f"sgemm_gflops_{name}"] = None if sgemm is None else sgemm[0 if name == "median" else 1]
        row[f"fraction_{name}"] = None if sgemm is None else gflops / row[f"sgemm_gflops_{name}"]
    row["flops"] = flops
    return row


def higher_ceiling(before, after):
    """The (median, best) sgemm GFLOP/s a row is divided by, from the measurements before and after
    it: the higher median and the higher best (a busy host only lowers a measurement); None when
    there is no ceiling."""
    if before is None:
        return None
    return max(before[0], after[0]), max(before[1], after[1])


def measure_one(spec):
    """Run one configuration (in its own subprocess): sgemm, the timed calls, sgemm again; the row's
    ceiling is the higher of the two sgemm measurements."""
    from engine.model import ModelConfig
    train, device = spec["pass"] == "train", spec["device"]
    before = sgemm_gflops() if device == "cpu" else None
    make = engine_call if spec["kind"] == "engine" else torch_call
    call = make(spec["variant"], train, spec["batch"], spec["size"], device)
    times = call_times(call, spec["repeats"], warmup=WARMUP, min_seconds=spec.get("min_seconds", 0.0))
    after = sgemm_gflops() if device == "cpu" else None
    sgemm = higher_ceiling(before, after)
    flops = step_flops(ModelConfig(image_size=spec["size"]), spec["batch"], train=train)
    row = row_figures(spec, times, flops, sgemm)
    row.update(peak_rss_mb=peak_rss_mb(), load_average=load_average(), times=times,
               sgemm_before=before, sgemm_after=after)
    print(json.dumps(row))


def run_subprocess(spec, threads):
    """Measure `spec` in a fresh interpreter with `threads` threads."""
    env = dict(os.environ)
    configure_threads(threads, env)
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _label(row):
    return f"{row['kind']} {row['variant']} {row['pass']}"


def markdown_tables(rows, batches, header=""):
    """Two tables: per configuration and batch size the median (best) images/s, GFLOP/s and fraction
    of the sgemm ceiling, and our engine's speed-up over PyTorch; then every row in full."""
    by = {(r["kind"], r["variant"], r["pass"], r["batch"]): r for r in rows}
    configs = list(dict.fromkeys((r["kind"], r["variant"], r["pass"]) for r in rows))
    lines = [header, "", "Medians; in brackets the best call (timed calls per configuration: the last table).", "",
             "| configuration | " + " | ".join(f"bs {b}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]

    def line(label, config, text):
        cells = ["-" if by.get((*config, b)) is None else text(by[(*config, b)]) for b in batches]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def fraction(r):
        return "-" if r["fraction_median"] is None else f"{r['fraction_median']:.2f} ({r['fraction_best']:.2f})"
    # a row's own ceiling can read low (or high) when the host dips (or bursts) while sgemm runs,
    # which flatters (or sinks) that row; the median of all the rows' ceilings is the run's typical one
    ceilings = [r["sgemm_gflops_median"] for r in rows if r["sgemm_gflops_median"] is not None]
    typical = statistics.median(ceilings) if ceilings else None
    for config in configs:
        label = " ".join(config)
        line(f"{label} img/s", config, lambda r: f"{r['images_per_s_median']:,.0f} ({r['images_per_s_best']:,.0f})")
        line(f"{label} GFLOP/s", config, lambda r: f"{r['gflops_median']:.1f} ({r['gflops_best']:.1f})")
        line(f"{label} fraction of sgemm", config, fraction)
        if typical is not None:
            line(f"{label} fraction of the run's typical sgemm ({typical:.0f})", config,
                 lambda r: f"{r['gflops_median'] / typical:.2f}")
    for kind, variant, pass_ in configs:
        for peer in configs:
            if kind == "engine" and peer[0] == "torch" and peer[2] == pass_:
                def speedup(r, peer=peer):
                    theirs = by.get((*peer, r["batch"]))
                    return "-" if theirs is None else f"{r['images_per_s_median'] / theirs['images_per_s_median']:.2f}x"
                line(f"{variant} {pass_} vs torch {peer[1]} (median)", (kind, variant, pass_), speedup)
    lines += ["", "| configuration | batch | img/s median | img/s best | GFLOP/s median | sgemm GFLOP/s "
                  "median | fraction median | fraction best | timed calls | peak RSS MB | load average |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sgemm = "-" if r["sgemm_gflops_median"] is None else f"{r['sgemm_gflops_median']:.1f}"
        best = "-" if r["fraction_best"] is None else f"{r['fraction_best']:.3f}"
        median = "-" if r["fraction_median"] is None else f"{r['fraction_median']:.3f}"
        load = " ".join(f"{v:.2f}" for v in r["load_average"])
        lines.append(f"| {_label(r)} | {r['batch']} | {r['images_per_s_median']:,.0f} | "
                     f"{r['images_per_s_best']:,.0f} | {r['gflops_median']:.1f} | {sgemm} | {median} | {best} | "
                     f"{r['timed_calls']} | {r['peak_rss_mb']:.0f} | {load} |")
    return "\n".join(lines) + "\n"


def main():
    """Measure every configuration and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--kernels", nargs="+", default=["fast"])
    parser.add_argument("--passes", nargs="+", choices=("train", "eval"), default=["train", "eval"],
                        help="training step, no-grad evaluation, or both")
    parser.add_argument("--torch", action="store_true", help="also time PyTorch (if installed)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where theta and the batch live (cuda: CuPy arrays, --kernels cuda/reference)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="at least this many timed calls")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="and timed calls until they add up to this many seconds")
    parser.add_argument("--name", default="step_time")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return measure_one(json.loads(args.one))
    specs = [("engine", k) for k in args.kernels]
    if args.torch:
        try:
            import torch  # noqa: F401
            specs += [("torch", "nchw"), ("torch", "channels_last")]
        except ImportError:
            print("PyTorch not installed: timing our engine only", file=sys.stderr)
    rows = []
    for batch in args.batches:
        for kind, variant in specs:
            for pass_ in args.passes:
                slow = variant == "reference" and batch > 64
                spec = {"kind": kind, "variant": variant, "pass": pass_, "batch": batch,
                        "size": args.image_size, "repeats": max(3, args.repeats // 2) if slow else args.repeats,
                        "device": args.device, "threads": args.threads, "min_seconds": args.min_seconds}
                row = run_subprocess(spec, args.threads)
                rows.append(row)
                fraction = "" if row["fraction_median"] is None else (
                    f"  {row['fraction_median']:.2f} of sgemm {row['sgemm_gflops_median']:.0f}")
                print(f"{kind:6s} {variant:13s} {pass_:5s} bs {batch:4d}: {row['images_per_s_median']:7,.0f} img/s "
                      f"(best {row['images_per_s_best']:,.0f})  {row['gflops_median']:5.1f} GFLOP/s{fraction}  "
                      f"peak {row['peak_rss_mb']:.0f} MB  load {row['load_average'][0]:.2f}", flush=True)
    header = (f"Step time of the study's net at {args.image_size} px, {args.threads} threads, device "
              f"{args.device}. Ceiling: NumPy float32 sgemm (2048^3) timed in each row's own process "
              f"right before and after it, the higher of the two; FLOPs exact per layer (bench/flops.py).")
    table = markdown_tables(rows, args.batches, header)
    write_result(args.name, {"machine": machine_info(), "threads": args.threads, "device": args.device,
                             "rows": rows})
    write_markdown(args.name, table)
    print(table)


if __name__ == "__main__":
    main()
