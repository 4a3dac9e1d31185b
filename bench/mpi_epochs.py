"""Time per epoch against batch size for 1, 2 and 4 MPI ranks (the study's figure 8, on CPU ranks).

    python bench/mpi_epochs.py [--ranks 1 2 4] [--batches 32 64 128 256] [--images 1024]
                               [--repeats 2] [--kernels fast|reference]

Every rank count runs as one job (`mpirun -n R`; a plain process for R = 1) on the same data:
--images random uint8 images at 128 px held in memory. Each rank gets cores / R threads (the
project's default, parallel.threads). For each batch size the job builds the model, takes two
warm-up steps (scratch buffers, caches), then trains one epoch with the engine's Trainer, timing
every allreduce_sum_ call on rank 0 (so the share includes waiting for the slowest rank). The jobs
run in --repeats rounds over all rank counts and each setting keeps its fastest epoch, so a burst of
load from other programs does not favour one rank count; the 1-minute load average is recorded.
Writes bench/results/mpi_epochs.json, mpi_epochs.md and mpi_epochs.png.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import RESULTS, machine_info, write_result, write_markdown  # noqa: E402
from parallel.threads import THREAD_VARIABLES, available_cores, configure_threads  # noqa: E402

IMAGE_SIZE = 128


class TimedCommunicator:
    """Wraps a communicator and adds up the wall time spent in allreduce_sum_."""

    def __init__(self, comm):
        self.inner = comm
        self.reduce_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def allreduce_sum_(self, array):
        """The wrapped sum, timed."""
        started = time.perf_counter()
        result = self.inner.allreduce_sum_(array)
        self.reduce_seconds += time.perf_counter() - started
        return result


class RandomImages:
    """Random uint8 NCHW images and 0/1 labels in memory, served like imagedata's pixels()."""

    def __init__(self, count, size, seed=0):
        import numpy as np
        rng = np.random.default_rng(seed)
        self.train_x = rng.integers(0, 256, size=(count, 3, size, size), dtype=np.uint8)
        self.train_y = rng.integers(0, 2, size=count).astype(np.uint8)
        self.val_x, self.val_y = self.train_x[:0], self.train_y[:0]

    def pixels(self, split, indices):
        """uint8 images (as imagedata.Dataset.pixels) and float labels for `indices` of training."""
        import numpy as np
        from ops.pixels import PixelRows
        return PixelRows(self.train_x, indices), self.train_y[indices].astype(np.float32)


def time_epochs(batches, images, kernels):
    """Run inside one job: per batch size, one epoch's time and the allreduce time within it."""
    import numpy as np

    from engine.model import ModelConfig, build_model
    from engine.train import Trainer, TrainConfig
    from parallel import get_communicator
    comm = TimedCommunicator(get_communicator())
    data = RandomImages(images, IMAGE_SIZE)
    config = ModelConfig(image_size=IMAGE_SIZE)
    for turn in ("root", "others"):  # rank 0 fills numba's on-disk cache first; the rest load it
        if (turn == "root") == comm.is_root:
            build_model(config, kernels=kernels).loss_and_grad(*data.pixels("train", np.arange(2)))
        comm.barrier()
    rows = []
    for batch in batches:
        trainer = Trainer(build_model(config, seed=0, kernels=kernels), data, comm,
                          TrainConfig(batch=batch, lr=0.001, max_epochs=1), log=lambda *a: None)
        for _ in range(2):
            trainer.train_step(np.arange(batch))
        comm.barrier()
        comm.reduce_seconds = 0.0
        if trainer.run_epoch() != "ok":
            raise RuntimeError(f"training diverged at batch {batch}")
        # every rank leaves the epoch's last collective together; rank 0's clock stands for all
        rows.append({"batch": batch, "steps": trainer.steps_per_epoch,
                     "epoch_seconds": trainer.train_seconds,
                     "allreduce_seconds": comm.reduce_seconds,
                     "allreduce_fraction": comm.reduce_seconds / trainer.train_seconds})
    return comm, rows


def worker(args):
    """One job's body: time the epochs and let rank 0 write them to args.worker."""
    comm, rows = time_epochs(args.batches, args.images, args.kernels)
    if comm.is_root:
        threads = int(os.environ["NUMBA_NUM_THREADS"])
        Path(args.worker).write_text(json.dumps(
            [{"ranks": comm.size, "threads_per_rank": threads, **row} for row in rows]))


def launch(ranks, args, out):
    """Run the worker as a job of `ranks` processes with the default thread budget."""
    env = {k: v for k, v in os.environ.items()
           if k not in THREAD_VARIABLES and not k.startswith(("PMI_", "MPI_", "OMPI_"))}
    command = [sys.executable, __file__, "--worker", str(out), "--images", str(args.images),
               "--kernels", args.kernels,
               "--batches", *map(str, args.batches)]
    if ranks > 1:
        command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)] + command
    subprocess.run(command, env=env, check=True)
    return json.loads(Path(out).read_text())


def markdown_table(rows, batches):
    """Seconds per epoch (and allreduce share) with one row per rank count."""
    lines = ["| ranks x threads | " + " | ".join(f"bs {b}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]
    for ranks in sorted({r["ranks"] for r in rows}):
        mine = {r["batch"]: r for r in rows if r["ranks"] == ranks}
        threads = next(iter(mine.values()))["threads_per_rank"]
        cells = [f"{mine[b]['epoch_seconds']:.2f} s ({100 * mine[b]['allreduce_fraction']:.1f}%)"
                 for b in batches]
        lines.append(f"| {ranks} x {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, batches, path, title):
    """Time per epoch against batch size, one line per rank count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4))
    for ranks in sorted({r["ranks"] for r in rows}):
        mine = sorted((r for r in rows if r["ranks"] == ranks), key=lambda r: r["batch"])
        axes.plot([r["batch"] for r in mine], [r["epoch_seconds"] for r in mine], marker="o",
                  label=f"{ranks} rank(s) x {mine[0]['threads_per_rank']} thread(s)")
    axes.set_xscale("log", base=2)
    axes.set_xticks(batches, [str(b) for b in batches])
    axes.set_xlabel("global batch size")
    axes.set_ylabel("time per epoch (s)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def default_kernels():
    """The fused numba kernels when this checkout has them, else the NumPy reference."""
    return "fast" if (HERE.parent / "ops" / "block_numba.py").exists() else "reference"


def main():
    """Run every rank count, then write the JSON, the Markdown table and the plot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds over all settings; each setting's fastest epoch counts")
    p.add_argument("--kernels", choices=("fast", "reference"), default=default_kernels())
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        configure_threads()
        from engine.tuning import tune_process
        tune_process()
        return worker(args)
    by_key, load = {}, [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):  # rounds over all rank counts: load changes hit all alike
            for ranks in args.ranks:
                for row in launch(ranks, args, Path(tmp) / f"r{ranks}.json"):
                    key = (row["ranks"], row["batch"])
                    if key not in by_key or row["epoch_seconds"] < by_key[key]["epoch_seconds"]:
                        by_key[key] = row
                load.append(os.getloadavg()[0])
                print(f"round {round_ + 1}, {ranks} rank(s): " + ", ".join(
                    f"bs {r['batch']} {r['epoch_seconds']:.2f} s" for k, r in sorted(by_key.items())
                    if k[0] == ranks), flush=True)
    rows = [by_key[k] for k in sorted(by_key)]
    payload = {"machine": {**machine_info(), "cores_available": available_cores()},
               "kernels": args.kernels, "images": args.images, "image_size": IMAGE_SIZE,
               "repeats": args.repeats, "load_average_1min_during_run": load, "rows": rows}
    largest = max(args.batches)
    if (1, largest) in by_key and (2, largest) in by_key:
        ratio = by_key[2, largest]["epoch_seconds"] / by_key[1, largest]["epoch_seconds"]
        payload[f"ratio_2_ranks_to_1_rank_at_batch_{largest}"] = ratio
        print(f"2 ranks / 1 rank epoch time at batch {largest}: {ratio:.3f} (bar: <= 1.10)")
    write_result("mpi_epochs", payload)
    table = markdown_table(rows, args.batches)
    title = (f"{args.images} random {IMAGE_SIZE}-px images, {args.kernels} kernels, "
             f"{available_cores()} cores")
    write_markdown("mpi_epochs",
        f"# Time per epoch vs batch size and MPI ranks\n\n{title}; threads per rank = cores / ranks. "
        f"Cells: seconds per epoch (share of the epoch spent in the gradient allreduce, including "
        f"waiting for the slowest rank). 1-minute load average during the run: "
        f"{min(load):.1f} to {max(load):.1f} on {available_cores()} cores (other programs running "
        f"make multi-threaded single processes look worse than several single-threaded ranks)."
        f"\n\n{table}\n")
    plot(rows, args.batches, RESULTS / "mpi_epochs.png", title)
    print(table)


if __name__ == "__main__":
    main()
