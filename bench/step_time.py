"""Training-step throughput of the study's net (128 px): forward + backward + SGD update.

    python bench/step_time.py [--batches 32 64 128 256] [--kernels reference fast] [--torch]
    python bench/step_time.py --device cuda --kernels cuda reference --torch --name step_time_cuda

Times our engine with each kernel set and, when PyTorch is installed and --torch is given, the same
net in PyTorch (NCHW and channels_last) in the same process, so the ratios come from one run on one
machine. Each configuration runs in a fresh subprocess so that peak memory is its own. Writes
bench/results/step_time.json and step_time.md.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (RESULTS, best_time, machine_info, peak_rss_mb, study_net_step,  # noqa: E402
                          write_result)


def array_module(device):
    """numpy for cpu, cupy for cuda."""
    if device == "cuda":
        import cupy
        return cupy
    import numpy
    return numpy


def time_engine(kernels, batch, image_size, repeats, device="cpu"):
    """Seconds per training step of our engine, and peak RSS."""
    *_, step = study_net_step(kernels, batch, image_size, xp=array_module(device))
    seconds = best_time(step, repeats, warmup=2)
    return seconds, peak_rss_mb()


def time_eval(kernels, batch, image_size, repeats, device="cpu"):
    """Seconds per no-grad forward pass of a batch (ends by reading the loss back)."""
    import numpy as np

    from engine.model import ModelConfig, build_model
    xp = array_module(device)
    model = build_model(ModelConfig(image_size=image_size), seed=0, kernels=kernels, xp=xp)
    x = xp.asarray(np.random.default_rng(0).random((batch, 3, image_size, image_size), dtype=np.float32))
    y = xp.zeros(batch, dtype=np.float32)
    return best_time(lambda: model.evaluate(x, y, batch_size=batch), repeats, warmup=2), peak_rss_mb()


def time_torch(memory_format, batch, image_size, repeats, device="cpu"):
    """Seconds per training step of the same net in PyTorch, and peak RSS."""
    import torch
    from torch import nn
    torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count())))
    layers, channels = [], 3
    for filters in (4, 8, 16, 32, 64):
        layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    feature = image_size // 32
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * feature * feature, 256), nn.ReLU(),
                        nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))
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
    return best_time(step, repeats, warmup=2), peak_rss_mb()


def measure_one(spec):
    """Run one configuration (called in a subprocess) and print its JSON result."""
    kind, variant, batch, size, repeats = spec["kind"], spec["variant"], spec["batch"], spec["size"], spec["repeats"]
    device = spec.get("device", "cpu")
    if kind == "engine":
        seconds, rss = time_engine(variant, batch, size, repeats, device)
    elif kind == "eval":
        seconds, rss = time_eval(variant, batch, size, repeats, device)
    else:
        seconds, rss = time_torch(variant, batch, size, repeats, device)
    print(json.dumps({**spec, "seconds": seconds, "images_per_s": batch / seconds, "peak_rss_mb": rss}))


def run_subprocess(spec, threads):
    """Measure `spec` in a fresh interpreter with `threads` threads."""
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown_table(rows, batches):
    """images/s per configuration and batch size, plus ratios to PyTorch NCHW."""
    by = {(r["kind"], r["variant"], r["batch"]): r for r in rows}
    variants = sorted({(r["kind"], r["variant"]) for r in rows})
    lines = ["| configuration | " + " | ".join(f"bs {b}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]
    for kind, variant in variants:
        cells = []
        for b in batches:
            r = by.get((kind, variant, b))
            cells.append("-" if r is None else f"{r['images_per_s']:,.0f}")
        lines.append(f"| {kind} {variant} (img/s) | " + " | ".join(cells) + " |")
    for kind, variant in variants:
        if kind != "engine":
            continue
        for ref in (("torch", "nchw"), ("torch", "channels_last"), ("engine", "reference")):
            if ref == (kind, variant) or not any((ref[0], ref[1], b) in by for b in batches):
                continue
            cells = []
            for b in batches:
                ours, theirs = by.get((kind, variant, b)), by.get((ref[0], ref[1], b))
                cells.append("-" if not ours or not theirs else f"{ours['images_per_s'] / theirs['images_per_s']:.2f}x")
            lines.append(f"| {variant} vs {ref[0]} {ref[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    """Measure every configuration and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--kernels", nargs="+", default=["reference", "fast"])
    parser.add_argument("--torch", action="store_true", help="also time PyTorch (if installed)")
    parser.add_argument("--eval", action="store_true", help="also time no-grad evaluation")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where theta and the batch live (cuda: CuPy arrays, --kernels cuda/reference)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="step_time")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return measure_one(json.loads(args.one))
    specs = [("engine", k) for k in args.kernels]
    if args.eval:
        specs += [("eval", k) for k in args.kernels]
    if args.torch:
        try:
            import torch  # noqa: F401
            specs += [("torch", "nchw"), ("torch", "channels_last")]
        except ImportError:
            print("PyTorch not installed: timing our engine only", file=sys.stderr)
    rows = []
    for batch in args.batches:
        for kind, variant in specs:
            repeats = args.repeats if batch <= 64 or variant != "reference" else max(2, args.repeats // 2)
            spec = {"kind": kind, "variant": variant, "batch": batch, "size": args.image_size,
                    "repeats": repeats, "device": args.device}
            row = run_subprocess(spec, args.threads)
            rows.append(row)
            print(f"{kind:6s} {variant:14s} bs {batch:4d}: {row['images_per_s']:8.0f} img/s  "
                  f"{row['seconds'] * 1e3:8.1f} ms/step  peak {row['peak_rss_mb']:.0f} MB", flush=True)
    table = markdown_table(rows, args.batches)
    write_result(args.name, {"machine": machine_info(), "threads": args.threads, "device": args.device,
                             "rows": rows})
    (RESULTS / f"{args.name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
