"""How a study should use the cores: whole runs side by side, threads, or data parallelism.

    python bench/study_throughput.py [--batches 32 256] [--images 4096] [--image-size 128]

A study trains many independent runs, so what counts is the machine's total training throughput
(images per second over all runs together), not one run's speed. On C cores it compares
    runs     C single-threaded processes, each training its own run at the same time;
    threads  one process with C threads training one run;
    data     one run over C MPI ranks of one thread each (the gradient allreduce included).
Each layout trains one epoch of --images random uint8 images per batch size with the engine's
Trainer (the same data path as a real run: shuffled batches of uint8 pixels), after two warm-up
steps. The runs layout starts every epoch together (a file barrier), so the processes really share
the cores. Rounds go over all layouts (--repeats) and each keeps its fastest epoch; the 1-minute load
average is recorded. Writes bench/results/study_throughput.json and .md.
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

from bench.common import machine_info, write_result, write_markdown  # noqa: E402
from bench.flops import load_average  # noqa: E402
from parallel.threads import THREAD_VARIABLES, available_cores, configure_threads  # noqa: E402

LAYOUTS = ("runs", "threads", "data")


def wait_for_peers(folder, tag, peers, timeout=600):
    """File barrier: announce `tag` and return once `peers` processes have announced it."""
    Path(folder, f"{tag}.{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while len(list(Path(folder).glob(f"{tag}.*"))) < peers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only some of {peers} processes reached {tag}")
        time.sleep(0.001)


def worker(args):
    """One process (or MPI rank) of a layout: per batch size, seconds of one timed epoch."""
    import numpy as np

    from bench.mpi_epochs import RandomImages
    from engine.model import ModelConfig, build_model
    from engine.train import Trainer, TrainConfig
    from parallel import get_communicator
    comm = get_communicator()
    data = RandomImages(args.images, args.image_size, seed=os.getpid() if args.peers > 1 else 0)
    config = ModelConfig(image_size=args.image_size)
    rows = []
    for batch in args.batches:
        trainer = Trainer(build_model(config, seed=0, kernels="fast"), data, comm,
                          TrainConfig(batch=batch, lr=0.001, max_epochs=1), log=lambda *a: None)
        for _ in range(2):
            trainer.train_step(np.arange(batch))
        comm.barrier()
        if args.peers > 1:
            wait_for_peers(args.sync, f"bs{batch}", args.peers)
        if trainer.run_epoch() != "ok":
            raise RuntimeError(f"training diverged at batch {batch}")
        rows.append({"batch": batch, "epoch_seconds": trainer.train_seconds})
    if comm.is_root:
        Path(args.worker).write_text(json.dumps(rows))


def launch(layout, args, folder):
    """Run one layout on all cores; return {batch: total training images per second}."""
    cores = available_cores()
    env = {k: v for k, v in os.environ.items()
           if k not in THREAD_VARIABLES and not k.startswith(("PMI_", "MPI_", "OMPI_"))}
    env.update({k: str(cores if layout == "threads" else 1) for k in THREAD_VARIABLES})
    processes = cores if layout == "runs" else 1
    sync = Path(folder, f"sync-{layout}-{time.monotonic_ns()}")
    sync.mkdir()
    command = [sys.executable, __file__, "--images", str(args.images), "--image-size",
               str(args.image_size), "--sync", str(sync), "--peers", str(processes),
               "--batches", *map(str, args.batches)]
    if layout == "data":
        command = [str(Path(sys.executable).parent / "mpirun"), "-n", str(cores)] + command
    outs = [Path(folder, f"{layout}-{i}.json") for i in range(processes)]
    children = [subprocess.Popen(command + ["--worker", str(out)], env=env) for out in outs]
    if any(child.wait() != 0 for child in children):
        raise RuntimeError(f"layout {layout} failed")
    throughput = {}
    for out in outs:
        for row in json.loads(out.read_text()):
            throughput[row["batch"]] = throughput.get(row["batch"], 0.0) + args.images / row["epoch_seconds"]
    return throughput


def markdown_table(best, batches, cores):
    """Total training images/s per layout and batch size, and each layout relative to the best."""
    names = {"runs": f"{cores} runs x 1 thread", "threads": f"1 run x {cores} threads",
             "data": f"1 run x {cores} ranks (data parallel)"}
    lines = ["| layout | " + " | ".join(f"bs {b}" for b in batches) + " |",
             "|---|" + "---|" * len(batches)]
    for layout in LAYOUTS:
        if layout not in best:
            continue
        cells = [f"{best[layout][b]:,.0f} img/s ({best[layout][b] / max(best[x][b] for x in best):.2f})"
                 for b in batches]
        lines.append(f"| {names[layout]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    """Time every layout in rounds, keep each one's best, write JSON and Markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--name", default="study_throughput", help="result name under bench/results")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--sync", help=argparse.SUPPRESS)
    p.add_argument("--peers", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        configure_threads()
        from engine.tuning import tune_process
        tune_process()
        return worker(args)
    from engine.kernel_cache import warm_up_kernels
    from parallel import LocalCommunicator
    warm_up_kernels(LocalCommunicator(), "fast")  # fill numba's cache once, before processes race for it
    best, loads = {}, [load_average()]
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.repeats):
            for layout in args.layouts:
                measured = launch(layout, args, folder)
                mine = best.setdefault(layout, {})
                for batch, rate in measured.items():
                    mine[batch] = max(mine.get(batch, 0.0), rate)
                loads.append(load_average())
                print(f"round {round_ + 1} {layout:8s}: " + ", ".join(
                    f"bs {b} {r:,.0f} img/s" for b, r in sorted(measured.items())), flush=True)
    cores = available_cores()
    winner = {b: max(best, key=lambda layout: best[layout][b]) for b in args.batches}
    write_result(args.name, {
        "machine": {**machine_info(), "cores_available": cores}, "images": args.images,
        "image_size": args.image_size, "repeats": args.repeats, "load_averages": loads,
        "training_images_per_s": {layout: {str(b): r for b, r in rates.items()} for layout, rates in best.items()},
        "best_layout": {str(b): w for b, w in winner.items()}})
    table = markdown_table(best, args.batches, cores)
    write_markdown(args.name,
        f"# Total training throughput of a study by layout\n\n{args.images} random {args.image_size}-px "
        f"images per epoch, fast kernels, {cores} cores; best of {args.repeats} rounds; in brackets the "
        f"share of the best layout. Load average (1, 5, 15 min) before and after each layout: "
        f"{', '.join(str(x) for x in loads)}.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
