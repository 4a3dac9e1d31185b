"""Whole-epoch throughput against the training step's, on the real photos: one run, or a study's layout.

    python bench/epoch_time.py [--data /work/shared/data/PetImages] [--batches 32 256] [--threads 2]
    python bench/epoch_time.py --processes 2 --threads 1 --name epoch_time_study_layout

The photos are loaded through imagedata (its memory-mapped uint8 cache at --image-size; the first
load decodes every photo once). For each batch size:
1. the step: forward + backward + SGD update (`model.loss_and_grad`, `SGD.step`) on batches of real
   photos already in memory, timed step by step (median, best);
2. --epochs successive whole epochs of one run exactly as `run.py` trains them, `Trainer.train_epoch`
   with a run folder: shuffled batches from the cache, the steps, the progress line, validation at
   the eval batch size, the metrics file and the checkpoint; in-memory steps are timed again after
   each epoch, and each epoch is compared with the steps timed right before and right after it.
The figure of merit is (training images / whole-epoch seconds) / (step images/s at the median). On
a shared host the load moves between the two measurements; the steps' share of the epoch's wall time
(what the ratio is when the steps inside the epoch run at the in-memory speed) is measured within
the epoch alone and printed beside it.
The epoch's wall time is broken down by timing the trainer's own calls (the instance's methods are
wrapped, the code is not changed): the training steps (their first blocks read each photo from the
cache themselves: ops.pixels.PixelRows), naming the training batches' photos in the cache,
validation (its forward passes, and the rest: its batches and the loss sums), the checkpoint and the
metrics file; `other` is what is left (per-step bookkeeping, the progress line, the epoch's
distances). Writes bench/results/epoch_time.json and epoch_time.md.

--processes N measures a study's layout instead of one run: N processes of --threads threads each
train their own run side by side, exactly as `run.py study` runs its workers (one single-threaded
worker per core by default), every batch size starting together (a file barrier). Each process
measures as above; the summary adds up their training throughput, and the effective seconds per
epoch of the machine (a process's epoch over N) is what `run.py study --project` reads.
"""
import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.study_throughput import wait_for_peers  # noqa: E402
from parallel.threads import THREAD_VARIABLES, configure_threads  # noqa: E402  (sets thread variables before numpy loads)

PARTS = ("train steps", "train batches", "validation forward", "validation other",
         "checkpoint and metrics file", "other")


class Stopwatch:
    """Wall seconds spent inside wrapped methods, summed per label."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)

    def wrap(self, owner, name, label):
        """Replace owner.name (on the instance) by a timed call of the original; `label` is a string
        or a function of the call's first argument (e.g. the split of Dataset.pixels)."""
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label if isinstance(label, str) else label(args[0])] += time.perf_counter() - start
        setattr(owner, name, timed)


def epoch_breakdown(seconds, epoch_seconds):
    """{part: seconds} over PARTS from a Stopwatch's sums; 'validation' includes its forward passes,
    and 'other' is the epoch's wall time not inside any timed call."""
    parts = {"train steps": seconds["loss_and_grad"] + seconds["sgd"],
             "train batches": seconds["train_batches"],
             "validation forward": seconds["evaluate_sums"],
             "validation other": seconds["validation"] - seconds["evaluate_sums"],
             "checkpoint and metrics file": seconds["checkpoint"] + seconds["metrics_file"]}
    parts["other"] = epoch_seconds - sum(parts.values())
    return parts


def step_seconds(model, sgd, batches, budget, warmup=2):
    """Per-step wall times of loss_and_grad + SGD update, cycling through in-memory `batches` for
    about `budget` seconds (at least 5 steps) after `warmup` untimed steps."""
    times = []
    for i in itertools.count():
        x, y = batches[i % len(batches)]
        start = time.perf_counter()
        model.loss_and_grad(x, y)
        sgd.step(0.01)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            if sum(times) >= budget and len(times) >= 5:
                return times


def epoch_row(batch, epoch, n_train, n_val, seconds, epoch_seconds, steps):
    """The figures of one measured epoch: `seconds` are the Stopwatch sums during it, `steps` the
    in-memory step times measured right before and right after it."""
    parts = epoch_breakdown(seconds, epoch_seconds)
    step_rate = batch / statistics.median(steps)
    epoch_rate = n_train / epoch_seconds
    return {"batch": batch, "epoch": epoch, "train_images": n_train, "val_images": n_val,
            "epoch_seconds": epoch_seconds, "epoch_images_per_s": epoch_rate,
            "step_images_per_s_median": step_rate, "step_images_per_s_best": batch / min(steps),
            "steps_timed": len(steps), "ratio": epoch_rate / step_rate,
            "in_epoch_step_images_per_s": n_train / parts["train steps"],
            "validation_images_per_s": n_val / (parts["validation forward"] + parts["validation other"]),
            "breakdown_seconds": parts, "validation_batches_seconds": seconds["val_batches"]}


def measure_batch(data, batch, args):
    """Rows for `args.epochs` successive epochs of one run at batch size `batch`, each against the
    in-memory steps timed right before and right after it."""
    import numpy as np

    from bench.flops import load_average
    from engine.model import ModelConfig, build_model
    from engine.sgd import SGD
    from engine.train import Trainer, TrainConfig, epoch_permutation
    from parallel import LocalCommunicator
    from storage.runfolder import RunFolder
    config = ModelConfig(image_size=args.image_size)
    order = epoch_permutation(1, 0, len(data.train_y))
    # copied out of the cache: the in-memory step (in the epoch the first blocks read the cache)
    batches = [(np.asarray(x), y) for x, y in (data.pixels("train", order[k * batch:(k + 1) * batch])
                                                for k in range(4))]
    model = build_model(config, seed=0, kernels=args.kernels)
    sgd = SGD(model.theta, model.grad)
    rows, windows = [], [step_seconds(model, sgd, batches, args.step_seconds)]
    with tempfile.TemporaryDirectory(dir=args.run_parent) as folder:
        run_dir = RunFolder(Path(folder) / "run")
        run_dir.prepare({"args": {"bench": "epoch_time", "batch": batch}})
        trainer = Trainer(build_model(config, seed=0, kernels=args.kernels), data, LocalCommunicator(),
                          TrainConfig(batch=batch, lr=0.01, max_epochs=args.epochs), run_dir=run_dir,
                          log=print, progress=True)
        watch = Stopwatch()
        watch.wrap(trainer.model, "loss_and_grad", "loss_and_grad")
        watch.wrap(trainer.optimizer, "step", "sgd")
        watch.wrap(trainer, "evaluate_validation", "validation")
        watch.wrap(trainer.model, "evaluate_sums", "evaluate_sums")
        watch.wrap(trainer, "save_checkpoint", "checkpoint")
        watch.wrap(run_dir, "write_metrics", "metrics_file")
        watch.wrap(data, "pixels", lambda split: f"{split}_batches")
        try:
            for epoch in range(1, args.epochs + 1):
                load_before, before = load_average(), dict(watch.seconds)
                start = time.perf_counter()
                outcome = trainer.train_epoch()
                seconds = time.perf_counter() - start
                if outcome != "ok":
                    raise SystemExit(f"epoch {epoch} at batch {batch} ended {outcome}")
                spent = collections.defaultdict(float, {k: v - before.get(k, 0.0) for k, v in watch.seconds.items()})
                windows.append(step_seconds(model, sgd, batches, args.step_seconds))
                row = epoch_row(batch, epoch, len(data.train_y), len(data.val_y), spent, seconds,
                                windows[-2] + windows[-1])
                row.update(load_average_before=load_before, load_average_after=load_average(),
                           checkpoint_bytes=run_dir.checkpoint.stat().st_size)
                rows.append(row)
        finally:
            del data.pixels  # back to the class's method
    return rows


def markdown(rows, header):
    """The result as a Markdown table: one column per measured epoch."""
    cols = [f"bs {r['batch']} epoch {r['epoch']}" for r in rows]
    lines = [header, "", "| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(rows)]

    def line(label, cell):
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")
    line("**epoch / step throughput**", lambda r: f"**{r['ratio']:.3f}**")
    line("steps' share of the epoch (the ratio at equal step speed)",
         lambda r: f"{r['breakdown_seconds']['train steps'] / r['epoch_seconds']:.3f}")
    line("epoch: training images / whole-epoch s", lambda r: f"{r['epoch_images_per_s']:,.0f} img/s")
    line("step (in memory), median / best", lambda r: f"{r['step_images_per_s_median']:,.0f} / "
                                                      f"{r['step_images_per_s_best']:,.0f} img/s")
    line("steps inside the epoch", lambda r: f"{r['in_epoch_step_images_per_s']:,.0f} img/s")
    line("validation", lambda r: f"{r['validation_images_per_s']:,.0f} img/s")
    line("whole epoch", lambda r: f"{r['epoch_seconds']:.2f} s")
    for part in PARTS:
        line(f"- {part}", lambda r, p=part: f"{r['breakdown_seconds'][p]:.2f} s "
                                            f"({r['breakdown_seconds'][p] / r['epoch_seconds']:.1%})")
    line("of validation: assembling its batches", lambda r: f"{r['validation_batches_seconds']:.2f} s")
    line("load average before / after", lambda r: f"{r['load_average_before'][0]:.2f} / "
                                                  f"{r['load_average_after'][0]:.2f}")
    return "\n".join(lines) + "\n"


def layout_summary(rows, processes):
    """Markdown: per batch size, the study layout's figures from every process's rows (each row
    tagged with its "process"): a process's median epoch, the machine's effective seconds per epoch
    (that over the processes side by side), their total training throughput, and the medians of
    the per-epoch ratios."""
    lines = ["| batch | epoch, median per process | effective s per epoch (machine) | training img/s, "
             "all processes | epoch / step throughput | steps' share of the epoch | validation's share |",
             "|---|---|---|---|---|---|---|"]
    for batch in sorted({r["batch"] for r in rows}):
        mine = [r for r in rows if r["batch"] == batch]
        per_process = [statistics.median(r["epoch_seconds"] for r in mine if r["process"] == p)
                       for p in sorted({r["process"] for r in mine})]
        epoch = statistics.median(r["epoch_seconds"] for r in mine)
        total = sum(mine[0]["train_images"] / s for s in per_process)

        def share(part, rs=mine):
            return statistics.median(sum(r["breakdown_seconds"][p] for p in part) / r["epoch_seconds"] for r in rs)
        lines.append(f"| {batch} | {' / '.join(f'{s:.2f} s' for s in per_process)} | {epoch / processes:.2f} s | "
                     f"{total:,.0f} | {statistics.median(r['ratio'] for r in mine):.3f} | "
                     f"{share(['train steps']):.3f} | {share(['validation forward', 'validation other']):.3f} |")
    return "\n".join(lines) + "\n"


def launch_processes(args, argv):
    """Run this script as args.processes single-run workers side by side; their rows, each tagged
    with its process index."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    with tempfile.TemporaryDirectory() as folder:
        outs = [Path(folder, f"process-{i}.json") for i in range(args.processes)]
        command = [sys.executable, __file__, *argv, "--processes", "1", "--peers", str(args.processes),
                   "--sync", folder]
        children = [subprocess.Popen(command + ["--worker", str(out)], env=env) for out in outs]
        if any(child.wait() != 0 for child in children):
            raise SystemExit("a measuring process failed (its error is above)")
        return [{**row, "process": i} for i, out in enumerate(outs) for row in json.loads(out.read_text())]


def main():
    """Load the photos, measure every batch size, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "PetImages"
    parser.add_argument("--data", default=str(default_data),
                        help="the PetImages folder (default: ../shared/data/PetImages beside the checkout)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--kernels", default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="successive epochs measured per batch size")
    parser.add_argument("--step-seconds", type=float, default=2.0,
                        help="seconds of in-memory steps timed before and after each epoch")
    parser.add_argument("--run-parent", default=None, help="folder for the temporary run folders")
    parser.add_argument("--name", default="epoch_time")
    parser.add_argument("--processes", type=int, default=1,
                        help="runs side by side, --threads threads each (a study's layout)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sync", help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_threads(args.threads)
    import numba

    from bench.common import machine_info, peak_rss_mb, write_markdown, write_result
    from engine.kernel_cache import warm_up_kernels
    from engine.tuning import tune_process
    from imagedata import load_dataset
    from parallel import LocalCommunicator
    tune_process()  # as run.py does: the same heap and BLAS settings as a real run
    data = load_dataset(args.data, image_size=args.image_size)  # (decodes once, before any worker starts)
    warm_up_kernels(LocalCommunicator(), args.kernels, print)
    if args.processes > 1:
        return write_layout(args, data, launch_processes(args, sys.argv[1:]))
    rows = []
    for batch in args.batches:
        if args.peers > 1:
            wait_for_peers(args.sync, f"bs{batch}", args.peers)
        for row in measure_batch(data, batch, args):
            rows.append(row)
            print(f"bs {batch} epoch {row['epoch']}: {row['epoch_seconds']:.1f} s, "
                  f"{row['epoch_images_per_s']:,.0f} img/s; step {row['step_images_per_s_median']:,.0f} img/s; "
                  f"ratio {row['ratio']:.3f}", flush=True)
    header = (f"Epoch vs step throughput: {data.identity['n_train']:,} training + "
              f"{data.identity['n_val']:,} validation photos at {args.image_size} px, "
              f"{numba.get_num_threads()} threads, kernels {args.kernels}")
    result = {"machine": machine_info(), "threads": numba.get_num_threads(), "data": args.data,
              "image_size": args.image_size, "kernels": args.kernels, "rows": rows,
              "peak_rss_mb": peak_rss_mb()}
    if args.worker:
        Path(args.worker).write_text(json.dumps(rows))
        return
    write_result(args.name, result)
    table = markdown(rows, header)
    write_markdown(args.name, table)
    print(table)


def write_layout(args, data, rows):
    """Write NAME.json / NAME.md for the processes' rows."""
    from bench.common import machine_info, write_markdown, write_result
    write_result(args.name, {"machine": machine_info(), "processes": args.processes, "threads": args.threads,
                             "data": args.data, "image_size": args.image_size, "kernels": args.kernels,
                             "rows": rows})
    what = (f"{data.identity['n_train']:,} training + {data.identity['n_val']:,} validation photos at "
            f"{args.image_size} px, kernels {args.kernels}")
    text = (f"A study's layout: {args.processes} runs side by side, {args.threads} thread(s) each, {what}; "
            f"{args.epochs} epochs per process and batch size (medians over them)\n\n"
            + layout_summary(rows, args.processes))
    for p in range(args.processes):
        text += "\n" + markdown([r for r in rows if r["process"] == p], f"Process {p + 1}:")
    write_markdown(args.name, text)
    print(text)


if __name__ == "__main__":
    main()
