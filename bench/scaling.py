"""A measured model of data-parallel training time: fitted here, checked here, extrapolated to GPUs.

    python bench/scaling.py --measure [--ranks 1 2 4] [--batches 32 64 128 256] [--images 2048]
    python bench/scaling.py            # refit and predict again from the committed measurement

One step on N ranks with global batch B (per-rank batch b = ceil(B / N)) takes

    t_step(b, N) = (t0 + c b) (1 + sigma e_N) + T_sum(m, N) + 2 lambda_N

  t0 + c b       compute on one rank (data gather, forward, backward, SGD update): a fixed cost per
                 step plus a cost per example, so small shards pay t0 for fewer examples;
  sigma e_N      waiting for the slowest rank: sigma is the spread (standard deviation over mean) of
                 the ranks' compute times in one step, e_N = E[max of N standard normals];
  T_sum(m, N)    the gradient sum as implemented (parallel/mpi.py: Reduce to rank 0, then Bcast of the
                 m-byte vector), alpha-beta costs of MPICH's long-message algorithms: Reduce =
                 reduce-scatter by recursive halving + binomial gather, Bcast = binomial scatter +
                 ring allgather, so T_sum = (3 ceil(log2 N) + N - 1) alpha + 4 (N - 1) / N m beta;
  2 lambda_N     the two one-integer agreements per step (divergence, stop request).

and an epoch of n training and v validation examples adds its fixed costs:

    T_epoch = sum over the epoch's steps of t_step + e_val ceil(v / N) + T_data + T_checkpoint.

--measure runs one job per rank count (`mpirun -n R`, a plain process for R = 1; each rank gets
cores / R threads, at least 1, so 4 ranks oversubscribe 2 cores). Each job first calibrates the
model's terms in isolation: Reduce + Bcast over a sweep of message sizes, the one-integer agreement,
compute steps of the per-rank batches (every rank at once, so contention counts), the evaluation of
one rank's validation shard, the epoch's permutation and rank 0's checkpoint. Then it trains whole
epochs with the engine's Trainer (training, evaluation, checkpoint) on the same in-memory random
images at 128 px and reports their median time. The parent fits the calibration by least squares,
predicts every measured epoch and reports the error, then extrapolates: the article's 4 GPUs from
its published one-GPU epoch times and public link bandwidths, and up to 64 GPUs across hosts,
together with the gradient noise scale (docs/analysis/noise.json) as the statistical batch limit.
Writes bench/results/scaling.json, scaling.md and scaling.png.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, machine_info, write_result, write_markdown  # noqa: E402
from parallel.threads import THREAD_VARIABLES, available_cores, configure_threads  # noqa: E402

IMAGE_SIZE = 128
SWEEP_BYTES = (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20)
NOISE_JSON = ROOT / "docs" / "analysis" / "noise.json"
EXIT_USAGE = 2

# The article's setting (study.md): TFDS cats_vs_dogs split 80/20, one GPU's epoch times, 4 GPUs.
ARTICLE = {"n_train": 18610, "n_val": 4652, "one_gpu_epoch_seconds": {32: 12.4, 256: 7.7},
           "four_gpu_epoch_seconds": {256: 3.97}, "gpus": 4}
# Evaluation is a forward pass, about a third of a training step's arithmetic (backward ~ 2x forward).
EVAL_COST_RATIO = 1.0 / 3.0
# Links, bandwidth per direction from public specifications; latencies are assumptions (no spec).
LINKS = {
    "PCIe 3.0 x16": {"bytes_per_second": 15.75e9, "alpha": 10e-6,
                     "source": "PCIe 3.0: 8 GT/s x 16 lanes, 128b/130b encoding = 15.75 GB/s"},
    "NVLink 2.0 (1 link)": {"bytes_per_second": 25e9, "alpha": 10e-6,
                            "source": "NVIDIA V100: 25 GB/s per direction per NVLink 2.0 link"},
    "25 Gb/s Ethernet": {"bytes_per_second": 25e9 / 8, "alpha": 20e-6, "source": "line rate"},
    "50 Gb/s Ethernet": {"bytes_per_second": 50e9 / 8, "alpha": 20e-6, "source": "line rate"},
    "100 Gb/s Ethernet/InfiniBand EDR": {"bytes_per_second": 100e9 / 8, "alpha": 20e-6,
                                         "source": "line rate"},
}
CLUSTER_LINKS = ("25 Gb/s Ethernet", "50 Gb/s Ethernet", "100 Gb/s Ethernet/InfiniBand EDR")
CLUSTER_RANKS = (1, 2, 4, 8, 16, 32, 64)


class UsageError(Exception):
    """A mistake of the person running the script, reported in one line."""


# ---- the model ---------------------------------------------------------------------------------
def reduce_bcast_counts(ranks):
    """(latency count, byte factor) of Reduce + Bcast of one vector on `ranks` ranks.

    Reduce (Rabenseifner): recursive-halving reduce-scatter, log p rounds moving (p-1)/p m in all,
    then a binomial gather of the pieces, log p rounds and (p-1)/p m. Bcast (van de Geijn): binomial
    scatter, log p rounds and (p-1)/p m, then a ring allgather, p-1 rounds and (p-1)/p m.
    """
    if ranks <= 1:
        return 0.0, 0.0
    rounds = math.ceil(math.log2(ranks))
    return 3.0 * rounds + ranks - 1.0, 4.0 * (ranks - 1.0) / ranks


@lru_cache(maxsize=None)
def expected_max_normal(count):
    """E[max of `count` independent standard normals] (0 for one): how far the slowest of N ranks
    lies above the mean, in standard deviations. E = integral of x d(Phi(x)^N)."""
    from scipy import integrate, stats
    if count <= 1:
        return 0.0
    density = lambda x: x * count * stats.norm.pdf(x) * stats.norm.cdf(x) ** (count - 1)  # noqa: E731
    return integrate.quad(density, -12.0, 12.0)[0]


@dataclass
class StepModel:
    """The fitted terms of one configuration (a kind of rank and how it is connected)."""

    step_overhead: float        # t0, seconds per step
    per_example: float          # c, seconds per training example
    spread: float               # sigma, std / mean of the ranks' compute times in one step
    alpha: float                # seconds per message round of the collective
    beta: float                 # seconds per byte of the collective
    flag_seconds: float         # lambda, one one-integer allreduce
    eval_per_example: float     # seconds per validation example on one rank
    fixed_seconds: float        # per-epoch data (permutation) and checkpoint time
    message_bytes: int          # the gradient vector

    def compute_seconds(self, per_rank_batch):
        """t0 + c b: one rank's step without communication."""
        return self.step_overhead + self.per_example * per_rank_batch

    def sum_seconds(self, ranks):
        """T_sum(m, N): the gradient's Reduce + Bcast."""
        latencies, byte_factor = reduce_bcast_counts(ranks)
        return latencies * self.alpha + byte_factor * self.message_bytes * self.beta

    def step_seconds(self, per_rank_batch, ranks):
        """One data-parallel step: compute, waiting for the slowest rank, the sum, the two flags."""
        compute = self.compute_seconds(per_rank_batch)
        flags = 2.0 * self.flag_seconds if ranks > 1 else 0.0
        return compute * (1.0 + self.spread * expected_max_normal(ranks)) + self.sum_seconds(ranks) + flags

    def epoch_seconds(self, n_train, n_val, batch, ranks):
        """Every step of the epoch (the last one may be short) plus evaluation and fixed costs."""
        full, rest = divmod(n_train, batch)
        train = full * self.step_seconds(math.ceil(batch / ranks), ranks)
        if rest:
            train += self.step_seconds(math.ceil(rest / ranks), ranks)
        return train + self.eval_per_example * math.ceil(n_val / ranks) + self.fixed_seconds


def relative_least_squares(design, seconds):
    """Coefficients minimising the sum of squared RELATIVE residuals (each row divided by its time),
    so microsecond and millisecond timings weigh alike."""
    design, seconds = np.asarray(design, float), np.asarray(seconds, float)
    coefficients, *_ = np.linalg.lstsq(design / seconds[:, None], np.ones_like(seconds), rcond=None)
    return coefficients


def fit_compute(per_rank_batches, seconds):
    """(t0, c) of t = t0 + c b from step times measured at several per-rank batches."""
    b = np.asarray(per_rank_batches, float)
    t0, c = relative_least_squares(np.column_stack([np.ones_like(b), b]), seconds)
    return float(t0), float(c)


def fit_collective(message_bytes, ranks, seconds):
    """(alpha, beta) of the Reduce + Bcast model from timings of several sizes and rank counts."""
    design = [reduce_bcast_counts(p) for p in ranks]
    design = np.array([[lat, factor * m] for (lat, factor), m in zip(design, message_bytes)])
    alpha, beta = relative_least_squares(design, seconds)
    return float(alpha), float(beta)


def fit_spread(step_times):
    """sigma: pooled standard deviation over mean of the ranks' times within each step.

    `step_times` is (steps, ranks); each step is divided by its own mean across ranks, so changes of
    speed from step to step (which every rank sees) are not counted, only the rank-to-rank spread.
    """
    times = np.asarray(step_times, float)
    ranks = times.shape[1]
    if ranks < 2:
        return 0.0
    relative = times / times.mean(axis=1, keepdims=True)
    return float(np.sqrt(((relative - 1.0) ** 2).sum() / (times.shape[0] * (ranks - 1))))


def fit_from_epochs(epoch_seconds, n_train, n_val, eval_ratio=EVAL_COST_RATIO):
    """(t0, c) of one device from whole-epoch times at several batches {batch: seconds}.

    An epoch of n examples in batches of B takes ceil(n / B) t0 + c n, and evaluating v examples
    adds eval_ratio c v (a forward pass, no per-step cost assumed), so each epoch is linear in t0, c.
    """
    batches = sorted(epoch_seconds)
    design = [[math.ceil(n_train / b), n_train + eval_ratio * n_val] for b in batches]
    t0, c = relative_least_squares(design, [epoch_seconds[b] for b in batches])
    return float(t0), float(c)


# ---- measurement: runs inside each job ---------------------------------------------------------
class RandomSplits:
    """Random uint8 NCHW images and 0/1 labels in memory, served like imagedata's pixels()."""

    def __init__(self, n_train, n_val, size, seed=0):
        rng = np.random.default_rng(seed)
        self.train_x = rng.integers(0, 256, size=(n_train, 3, size, size), dtype=np.uint8)
        self.train_y = rng.integers(0, 2, size=n_train).astype(np.uint8)
        self.val_x = rng.integers(0, 256, size=(n_val, 3, size, size), dtype=np.uint8)
        self.val_y = rng.integers(0, 2, size=n_val).astype(np.uint8)

    def pixels(self, split, indices):
        """uint8 images (as imagedata.Dataset.pixels) and float labels."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.val_x, self.val_y)
        from ops.pixels import PixelRows
        return PixelRows(x, indices), y[indices].astype(np.float32)


def timed_on_every_rank(comm, action):
    """Start `action` on every rank at once (MPI Barrier: waiting ranks spin, as in a collective)
    and return every rank's seconds; a single process just times it."""
    mpi = getattr(comm, "comm", None)
    if mpi is not None:
        mpi.Barrier()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    return mpi.allgather(seconds) if mpi is not None else [seconds]


def measure_collective(comm, repeats):
    """Median seconds (slowest rank) of the gradient sum at each sweep size and of one flag (none
    on one rank: there is nothing to sum)."""
    if comm.size == 1:
        return [], 0.0
    rows = []
    for size in SWEEP_BYTES:
        vector = np.ones(size // 4, dtype=np.float32)
        samples = [max(timed_on_every_rank(comm, lambda: comm.allreduce_sum_(vector)))
                   for _ in range(repeats)]
        rows.append({"bytes": size, "seconds": float(np.median(samples))})
    flag = [max(timed_on_every_rank(comm, lambda: comm.any_flag(False))) for _ in range(repeats)]
    return rows, float(np.median(flag))


def local_trainer(data, batch, kernels):
    """A Trainer on one process (no collectives): what every rank computes between two sums."""
    from engine.model import ModelConfig, build_model
    from engine.train import Trainer, TrainConfig
    from parallel import LocalCommunicator
    return Trainer(build_model(ModelConfig(image_size=IMAGE_SIZE), seed=0, kernels=kernels), data,
                   LocalCommunicator(), TrainConfig(batch=batch, lr=0.001, max_epochs=1),
                   log=lambda *a: None)


def measure_compute(comm, data, per_rank_batches, examples, kernels):
    """Per per-rank batch: every rank's time of each training step without communication, all ranks
    stepping at once. Waiting ranks spin in the Barrier as they would in the Reduce."""
    rows = []
    for batch in per_rank_batches:
        trainer = local_trainer(data, batch, kernels)
        indices = np.arange(batch)
        for _ in range(2):  # scratch buffers and caches
            trainer.train_step(indices)
        steps = max(5, examples // batch)
        times = [timed_on_every_rank(comm, lambda: trainer.train_step(indices)) for _ in range(steps)]
        rows.append({"per_rank_batch": batch, "step_seconds": times})
    return rows


def measure_fixed(comm, data, n_val, kernels, run_dir, repeats=3):
    """Seconds of the per-epoch costs: evaluating one rank's validation shard (all ranks at once,
    slowest rank), the epoch's permutation, and rank 0 writing the checkpoint while the rest wait."""
    from engine.train import epoch_permutation
    from storage.runfolder import RunFolder
    shard = math.ceil(n_val / comm.size)
    trainer = local_trainer(RandomSplits(8, shard, IMAGE_SIZE), 8, kernels)
    trainer.run_dir = RunFolder(run_dir) if comm.is_root else None
    trainer.evaluate_validation()
    evaluation = [max(timed_on_every_rank(comm, trainer.evaluate_validation)) for _ in range(repeats)]
    permutation = [max(timed_on_every_rank(comm, lambda: epoch_permutation(0, 1, len(data.train_y))))
                   for _ in range(repeats)]
    checkpoint = [max(timed_on_every_rank(comm, trainer.save_checkpoint)) for _ in range(repeats)]
    return {"eval_examples": shard, "eval_seconds": float(np.median(evaluation)),
            "data_seconds": float(np.median(permutation)),
            "checkpoint_seconds": float(np.median(checkpoint))}


def measure_epochs(comm, data, batches, epochs, kernels, run_dir):
    """Median seconds of whole epochs (train, evaluate, checkpoint) with the engine's Trainer."""
    from engine.model import ModelConfig, build_model
    from engine.train import Trainer, TrainConfig
    from storage.runfolder import RunFolder
    rows = []
    for batch in batches:
        trainer = Trainer(build_model(ModelConfig(image_size=IMAGE_SIZE), seed=0, kernels=kernels),
                          data, comm, TrainConfig(batch=batch, lr=0.001, max_epochs=epochs),
                          run_dir=RunFolder(run_dir), log=lambda *a: None)
        for _ in range(2):
            trainer.train_step(np.arange(batch))

        def epoch():
            if trainer.train_epoch() != "ok":
                raise RuntimeError(f"training diverged at batch {batch}")
        seconds = [timed_on_every_rank(comm, epoch)[0] for _ in range(epochs)]
        rows.append({"batch": batch, "epoch_seconds": float(np.median(seconds)), "all": seconds})
    return rows


def worker(args):
    """One job's body: calibrate, time whole epochs, and let rank 0 write everything to args.worker."""
    from engine.kernel_cache import warm_up_kernels
    from engine.model import ModelConfig, build_model
    from parallel import get_communicator
    comm = get_communicator()
    data = RandomSplits(args.images, args.val_images, IMAGE_SIZE)
    warm_up_kernels(comm, args.kernels)  # rank 0 fills numba's on-disk cache first; the rest load it
    model = build_model(ModelConfig(image_size=IMAGE_SIZE), kernels=args.kernels)  # for the gradient's size
    per_rank = sorted({math.ceil(b / comm.size) for b in args.batches})
    with tempfile.TemporaryDirectory() as run_dir:
        sweep, flag = measure_collective(comm, args.sweep_repeats)
        compute = measure_compute(comm, data, per_rank, args.calibration_examples, args.kernels)
        fixed = measure_fixed(comm, data, args.val_images, args.kernels, run_dir)
        epochs = measure_epochs(comm, data, args.batches, args.epochs, args.kernels, run_dir)
    if comm.is_root:
        Path(args.worker).write_text(json.dumps({
            "ranks": comm.size, "threads_per_rank": int(os.environ["NUMBA_NUM_THREADS"]),
            "message_bytes": int(model.grad.nbytes), "sweep": sweep, "flag_seconds": flag, "compute": compute,
            "fixed": fixed, "epochs": epochs}))


def launch(ranks, args, out):
    """Run the worker as a job of `ranks` processes with the default thread budget."""
    env = {k: v for k, v in os.environ.items()
           if k not in THREAD_VARIABLES and not k.startswith(("PMI_", "MPI_", "OMPI_"))}
    command = [sys.executable, __file__, "--worker", str(out), "--kernels", args.kernels,
               "--images", str(args.images), "--val-images", str(args.val_images),
               "--epochs", str(args.epochs), "--calibration-examples", str(args.calibration_examples),
               "--sweep-repeats", str(args.sweep_repeats), "--batches", *map(str, args.batches)]
    if ranks > 1:
        command = [mpirun_path(), "-n", str(ranks)] + command
    subprocess.run(command, env=env, check=True)
    return json.loads(Path(out).read_text())


def mpirun_path():
    """The mpirun next to this Python (the project's MPICH), else the one on PATH."""
    found = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
    if found is None:
        raise UsageError("mpirun not found: install the project's requirements (./dev.sh) or put "
                         "MPICH's mpirun on PATH")
    return found


# ---- fitting and checking ----------------------------------------------------------------------
def fit_job(job):
    """The StepModel of one measured rank count, from its calibration only (not its epochs)."""
    batches = [row["per_rank_batch"] for row in job["compute"]]
    means = [float(np.median(np.mean(row["step_seconds"], axis=1))) for row in job["compute"]]
    t0, c = fit_compute(batches, means)
    spread = fit_spread(np.concatenate([np.asarray(row["step_seconds"]) for row in job["compute"]]))
    ranks = job["ranks"]
    alpha = beta = 0.0
    if ranks > 1:
        sweep = job["sweep"]
        alpha, beta = fit_collective([r["bytes"] for r in sweep], [ranks] * len(sweep),
                                     [r["seconds"] for r in sweep])
    fixed = job["fixed"]
    return StepModel(step_overhead=t0, per_example=c, spread=spread, alpha=alpha, beta=beta,
                     flag_seconds=job["flag_seconds"] if ranks > 1 else 0.0,
                     eval_per_example=fixed["eval_seconds"] / fixed["eval_examples"],
                     fixed_seconds=fixed["data_seconds"] + fixed["checkpoint_seconds"],
                     message_bytes=job["message_bytes"])


def check(measurement, models):
    """Predicted against measured epoch time for every measured (ranks, batch); `models` holds each
    job's StepModel, fitted from that job's calibration."""
    rows = []
    for job, model in zip(measurement["jobs"], models):
        for epoch in job["epochs"]:
            predicted = model.epoch_seconds(measurement["images"], measurement["val_images"],
                                            epoch["batch"], job["ranks"])
            rows.append({"ranks": job["ranks"], "threads_per_rank": job["threads_per_rank"],
                         "batch": epoch["batch"], "measured_seconds": epoch["epoch_seconds"],
                         "predicted_seconds": predicted,
                         "error": predicted / epoch["epoch_seconds"] - 1.0})
    return rows


# ---- predictions -------------------------------------------------------------------------------
def gpu_model(spread, link, message_bytes):
    """One article GPU (t0, c from its published epoch times) joined by `link`."""
    t0, c = fit_from_epochs(ARTICLE["one_gpu_epoch_seconds"], ARTICLE["n_train"], ARTICLE["n_val"])
    spec = LINKS[link]
    return StepModel(step_overhead=t0, per_example=c, spread=spread, alpha=spec["alpha"],
                     beta=1.0 / spec["bytes_per_second"], flag_seconds=2 * spec["alpha"],
                     eval_per_example=EVAL_COST_RATIO * c, fixed_seconds=0.0,
                     message_bytes=message_bytes)


def article_epoch(model, batch, gpus):
    """Predicted epoch seconds of the article's data set."""
    return model.epoch_seconds(ARTICLE["n_train"], ARTICLE["n_val"], batch, gpus)


def break_even_per_rank_batch(model, ranks):
    """Per-rank batch b below which doubling the ranks at a fixed global batch lengthens the step:
    the root of t_step(b, N) = t_step(b / 2, 2N). None when doubling pays down to b = 2 (or never
    pays up to b = 65536): no break-even in that range."""
    from scipy.optimize import brentq
    gain = lambda b: model.step_seconds(b, ranks) - model.step_seconds(b / 2.0, 2 * ranks)  # noqa: E731
    if gain(2.0) > 0 or gain(65536.0) <= 0:
        return None
    return float(brentq(gain, 2.0, 65536.0))


def time_to_result(model, global_batch, ranks, b_noise):
    """Relative time to a fixed loss: steps S_min (1 + B_noise / B) (McCandlish et al. 2018) times
    the step time at per-rank batch B / N (in units of S_min seconds)."""
    return (1.0 + b_noise / global_batch) * model.step_seconds(global_batch / ranks, ranks)


def noise_scales():
    """B_simple measured by `run.py analyze noise` (analysis/noise.py), per run, from the committed
    docs/analysis/noise.json."""
    if not NOISE_JSON.exists():
        return []
    runs = json.loads(NOISE_JSON.read_text())["runs"]
    return [{"label": r["label"], "b_simple": r["b_simple"]} for r in runs]


def predictions(measurement, fitted):
    """The article's 4 GPUs, the curve to 64 GPUs across hosts, and both batch-size limits."""
    # the spread of the fewest ranks measured here that have one (2 ranks: no oversubscription)
    several = sorted((f for f in fitted if f["ranks"] > 1), key=lambda f: f["ranks"])
    spread = several[0]["model"]["spread"] if several else 0.0
    spread_ranks = several[0]["ranks"] if several else None
    message = measurement["jobs"][0]["message_bytes"]
    one = gpu_model(spread, "PCIe 3.0 x16", message)
    article = {"inputs": {**{k: v for k, v in ARTICLE.items() if k != "four_gpu_epoch_seconds"},
                          "eval_cost_ratio": EVAL_COST_RATIO, "spread": spread,
                          "spread_measured_on_ranks": spread_ranks,
                          "message_bytes": message},
               "one_gpu": {"step_overhead": one.step_overhead, "per_example": one.per_example,
                           "epoch_seconds": {b: article_epoch(one, b, 1) for b in (32, 64, 128, 256)}},
               "published_four_gpu_epoch_seconds": ARTICLE["four_gpu_epoch_seconds"], "four_gpus": {}}
    for link in ("PCIe 3.0 x16", "NVLink 2.0 (1 link)"):
        model = gpu_model(spread, link, message)
        article["four_gpus"][link] = {
            **LINKS[link], "sum_seconds": model.sum_seconds(4),
            "epoch_seconds": {b: article_epoch(model, b, 4) for b in (32, 64, 128, 256)}}
    pcie_256 = article["four_gpus"]["PCIe 3.0 x16"]["epoch_seconds"][256]
    published = ARTICLE["four_gpu_epoch_seconds"][256]
    article["unexplained_seconds_per_step_at_256"] = (published - pcie_256) / math.ceil(ARTICLE["n_train"] / 256)
    cluster, scales = {}, noise_scales()
    grid = 2.0 ** np.arange(6, 16.01, 0.125)  # global batches from one example per rank on 64 GPUs
    for link in CLUSTER_LINKS:
        model = gpu_model(spread, link, message)
        strong = [article_epoch(model, 256, 1) / article_epoch(model, 256, n) for n in CLUSTER_RANKS]
        weak = [article_epoch(model, 256, 1) / article_epoch(model, 256 * n, n) for n in CLUSTER_RANKS]
        sum_share = [model.sum_seconds(n) / model.step_seconds(256 / n, n) for n in CLUSTER_RANKS]
        cluster[link] = {**LINKS[link], "ranks": list(CLUSTER_RANKS),
                         "speedup_global_batch_256": strong, "speedup_per_rank_batch_256": weak,
                         "sum_share_of_step_at_global_256": sum_share,
                         "sum_seconds_64": model.sum_seconds(64),
                         # the sum outlasts the examples' own compute (c b) below this per-rank batch
                         "sum_exceeds_example_compute_below": {
                             n: model.sum_seconds(n) / model.per_example for n in CLUSTER_RANKS[1:]},
                         "break_even_per_rank_batch": {n: break_even_per_rank_batch(model, n)
                                                       for n in CLUSTER_RANKS[:-1]}}
        cluster[link]["best_global_batch_64"] = {
            s["label"]: float(grid[np.argmin([time_to_result(model, b, 64, s["b_simple"])
                                              for b in grid])]) for s in scales}
    return {"article": article, "cluster": cluster, "noise_scales": scales}


# ---- reporting ---------------------------------------------------------------------------------
def check_table(rows):
    """Markdown: measured and predicted seconds per epoch and the error."""
    lines = ["| ranks x threads | batch | measured (s) | predicted (s) | error |", "|---|---|---|---|---|"]
    lines += [f"| {r['ranks']} x {r['threads_per_rank']} | {r['batch']} | {r['measured_seconds']:.3f} | "
              f"{r['predicted_seconds']:.3f} | {100 * r['error']:+.1f}% |" for r in rows]
    return "\n".join(lines)


def parameter_table(fitted):
    """Markdown: the fitted terms per rank count."""
    lines = ["| ranks | t0 (ms) | c (ms/example) | sigma | alpha (us) | beta (ns/byte) | lambda (us) | "
             "eval (ms/example) | data + checkpoint (ms) |", "|---|---|---|---|---|---|---|---|---|"]
    for f in fitted:
        m = f["model"]
        lines.append(f"| {f['ranks']} | {1e3 * m['step_overhead']:.2f} | {1e3 * m['per_example']:.3f} | "
                     f"{m['spread']:.3f} | {1e6 * m['alpha']:.1f} | {1e9 * m['beta']:.3f} | "
                     f"{1e6 * m['flag_seconds']:.0f} | {1e3 * m['eval_per_example']:.3f} | "
                     f"{1e3 * m['fixed_seconds']:.1f} |")
    return "\n".join(lines)


def prediction_text(pred):
    """Markdown: the article's setting and the curve to 64 GPUs."""
    a = pred["article"]
    one = a["one_gpu"]
    lines = [f"One article GPU, fitted to its published 12.4 s (bs 32) and 7.7 s (bs 256): "
             f"t0 = {1e3 * one['step_overhead']:.2f} ms per step, c = {1e3 * one['per_example']:.3f} ms "
             f"per example (evaluation = {EVAL_COST_RATIO:.2f} c per example); "
             f"straggler spread sigma = {a['inputs']['spread']:.3f} (measured here on "
             f"{a['inputs']['spread_measured_on_ranks']} ranks).", "",
             "| batch | 1 GPU | 4 GPUs, PCIe 3.0 x16 | 4 GPUs, NVLink 2.0 |", "|---|---|---|---|"]
    for b in (32, 64, 128, 256):
        lines.append(f"| {b} | {one['epoch_seconds'][b]:.2f} s | "
                     f"{a['four_gpus']['PCIe 3.0 x16']['epoch_seconds'][b]:.2f} s | "
                     f"{a['four_gpus']['NVLink 2.0 (1 link)']['epoch_seconds'][b]:.2f} s |")
    lines += ["", f"Article, 4 GPUs, bs 256: {ARTICLE['four_gpu_epoch_seconds'][256]} s. The model's shortfall is "
              f"{1e3 * a['unexplained_seconds_per_step_at_256']:.1f} ms per step that the model does not "
              f"contain (per-replica overhead of MirroredStrategy, a shared input pipeline).", "",
              "Speedup over one GPU (article compute), global batch 256 | per-rank batch 256:", "",
              "| link | " + " | ".join(f"N={n}" for n in CLUSTER_RANKS) + " |",
              "|---|" + "---|" * len(CLUSTER_RANKS)]
    for link, c in pred["cluster"].items():
        cells = [f"{s:.2f} / {w:.1f}" for s, w in zip(c["speedup_global_batch_256"],
                                                       c["speedup_per_rank_batch_256"])]
        lines.append(f"| {link} | " + " | ".join(cells) + " |")
    lines += ["", "Per-rank batch below which the gradient sum takes longer than computing the "
              "examples (T_sum(N) / c):", "",
              "| link | " + " | ".join(f"N={n}" for n in CLUSTER_RANKS[1:]) + " |",
              "|---|" + "---|" * (len(CLUSTER_RANKS) - 1)]
    for link, c in pred["cluster"].items():
        lines.append(f"| {link} | " + " | ".join(
            f"{v:.1f}" for v in c["sum_exceeds_example_compute_below"].values()) + " |")
    lines += ["", "Break-even per-rank batch (doubling N -> 2N at a fixed global batch stops paying "
              "below it), and the best global batch on 64 GPUs by time to a fixed loss for each "
              "measured B_simple:", "",
              "| link | T_sum at N=64 (ms) | " + " | ".join(f"{n}->{2 * n}" for n in CLUSTER_RANKS[:-1])
              + " | best B on 64 GPUs |", "|---|---|" + "---|" * len(CLUSTER_RANKS)]
    for link, c in pred["cluster"].items():
        cells = ["-" if v is None else f"{v:.1f}" for v in c["break_even_per_rank_batch"].values()]
        best = ", ".join(f"{v:.0f} (B_simple {s['b_simple']:.0f})" for s, v in
                         zip(pred["noise_scales"], c["best_global_batch_64"].values()))
        lines.append(f"| {link} | {1e3 * c['sum_seconds_64']:.2f} | " + " | ".join(cells) + f" | {best} |")
    return "\n".join(lines)


def plot(payload, path):
    """The article's figure 8 redrawn with measured and predicted points, the article's setting,
    the speedup to 64 GPUs, and the systems and statistical batch limits on one batch axis."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    here, article, speed, limits = axes.ravel()
    for ranks in sorted({r["ranks"] for r in payload["check"]}):
        rows = sorted((r for r in payload["check"] if r["ranks"] == ranks), key=lambda r: r["batch"])
        line, = here.plot([r["batch"] for r in rows], [r["measured_seconds"] for r in rows], "o",
                          label=f"{ranks} rank(s) measured")
        here.plot([r["batch"] for r in rows], [r["predicted_seconds"] for r in rows], "--",
                  color=line.get_color(), label=f"{ranks} rank(s) predicted")
    here.set_title("this machine: epoch time, measured (dots) vs model (dashes)", fontsize=9)
    here.set_ylabel("seconds per epoch")
    a = payload["predictions"]["article"]
    batches = (32, 64, 128, 256)
    article.plot(batches, [a["one_gpu"]["epoch_seconds"][b] for b in batches], "-", label="1 GPU model")
    for link, style in (("PCIe 3.0 x16", "--"), ("NVLink 2.0 (1 link)", ":")):
        article.plot(batches, [a["four_gpus"][link]["epoch_seconds"][b] for b in batches], style,
                     label=f"4 GPUs model, {link}")
    article.plot(list(ARTICLE["one_gpu_epoch_seconds"]), list(ARTICLE["one_gpu_epoch_seconds"].values()),
                 "ks", label="article, 1 GPU")
    article.plot(list(ARTICLE["four_gpu_epoch_seconds"]), list(ARTICLE["four_gpu_epoch_seconds"].values()),
                 "r^", label="article, 4 GPUs")
    article.set_title("the article's setting (figure 8)", fontsize=9)
    article.set_ylabel("seconds per epoch")
    for ax in (here, article):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("global batch size")
    cluster = payload["predictions"]["cluster"]
    for link, c in cluster.items():
        line, = speed.plot(c["ranks"], c["speedup_per_rank_batch_256"], "-o", ms=3,
                           label=f"{link}, per-rank batch 256")
        speed.plot(c["ranks"], c["speedup_global_batch_256"], "--", color=line.get_color(),
                   label=f"{link}, global batch 256")
    speed.plot(CLUSTER_RANKS, CLUSTER_RANKS, "k:", lw=0.8, label="ideal")
    speed.set_xscale("log", base=2)
    speed.set_yscale("log", base=2)
    speed.set_xlabel("GPUs (article compute, one per host)")
    speed.set_ylabel("epoch speedup over 1 GPU")
    speed.set_title("predicted speedup across hosts", fontsize=9)
    grid = 2.0 ** np.arange(6, 15.01, 0.125)
    scales = payload["predictions"]["noise_scales"]
    for link in (CLUSTER_LINKS[0], CLUSTER_LINKS[-1]):
        model = gpu_model(payload["predictions"]["article"]["inputs"]["spread"],
                          link, payload["predictions"]["article"]["inputs"]["message_bytes"])
        for s in scales:
            t = np.array([time_to_result(model, b, 64, s["b_simple"]) for b in grid])
            limits.plot(grid, t / t.min(), label=f"64 GPUs, {link.split(' ')[0]} Gb/s, B_simple {s['b_simple']:.0f}")
        even = cluster[link]["break_even_per_rank_batch"][32]
        if even and math.isfinite(even):
            limits.axvline(64 * even, color="grey", ls="--", lw=0.8)
    for s in scales:
        limits.axvline(s["b_simple"], color="red", ls=":", lw=0.8)
    limits.set_xscale("log", base=2)
    limits.set_yscale("log")
    limits.set_xlabel("global batch size (red: B_simple; grey: 64 x break-even per-rank batch)")
    limits.set_ylabel("time to a fixed loss / its minimum")
    limits.set_title("both limits on one batch axis", fontsize=9)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(measurement):
    """Fit, check and predict from a measurement; write the JSON, Markdown and figure; return the
    worst absolute error of the check."""
    models = [fit_job(job) for job in measurement["jobs"]]
    fitted = [{"ranks": job["ranks"], "model": asdict(model)}
              for job, model in zip(measurement["jobs"], models)]
    rows = check(measurement, models)
    payload = {"measurement": measurement, "fitted": fitted, "check": rows}
    payload["predictions"] = predictions(measurement, fitted)
    worst = max(abs(r["error"]) for r in rows)
    payload["worst_abs_error"] = worst
    write_result("scaling", payload)
    load = measurement["load_average_1min"]
    text = (f"# Scaling model: fit, check, predictions\n\n{measurement['images']} training + "
            f"{measurement['val_images']} validation random {IMAGE_SIZE}-px images, "
            f"{measurement['kernels']} kernels, {measurement['machine']['cores_available']} cores; "
            f"1-minute load average {min(load):.1f} to {max(load):.1f}. Model terms fitted from each "
            f"job's calibration; whole epochs (train + evaluate + checkpoint, median of "
            f"{measurement['epochs']}) measured separately.\n\n## Check (worst error "
            f"{100 * worst:.1f}%)\n\n{check_table(rows)}\n\n## Fitted terms\n\n{parameter_table(fitted)}"
            f"\n\n## Predictions\n\n{prediction_text(payload['predictions'])}\n")
    write_markdown("scaling", text)
    plot(payload, RESULTS / "scaling.png")
    print(text)
    return worst


def measure(args):
    """Run every rank count once and collect the jobs' calibrations and epochs."""
    jobs, load = [], [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in args.ranks:
            started = time.perf_counter()
            jobs.append(launch(ranks, args, Path(tmp) / f"r{ranks}.json"))
            load.append(os.getloadavg()[0])
            print(f"{ranks} rank(s): {time.perf_counter() - started:.0f} s", flush=True)
    return {"machine": {**machine_info(), "cores_available": available_cores()},
            "kernels": args.kernels, "images": args.images, "val_images": args.val_images,
            "image_size": IMAGE_SIZE, "epochs": args.epochs, "load_average_1min": load, "jobs": jobs}


def parse(argv=None):
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--measure", action="store_true",
                   help="measure on this machine first (else refit the committed measurement)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256])
    p.add_argument("--images", type=int, default=2048, help="training images per epoch")
    p.add_argument("--val-images", type=int, default=512)
    p.add_argument("--epochs", type=int, default=3, help="whole epochs per setting (median kept)")
    p.add_argument("--calibration-examples", type=int, default=1024,
                   help="examples per per-rank batch in the compute calibration")
    p.add_argument("--sweep-repeats", type=int, default=20)
    p.add_argument("--kernels", choices=("fast", "reference"), default="fast")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    """Measure (with --measure) or load the measurement, then fit, check, predict and write."""
    args = parse(argv)
    if args.worker:
        configure_threads()
        from engine.tuning import tune_process
        tune_process()
        return worker(args)
    try:
        if min(args.ranks + args.batches) < 1 or args.images < max(args.batches) or args.val_images < 1:
            raise UsageError("ranks, batches and image counts must be positive, with --images at "
                             "least the largest batch")
        if args.measure:
            mpirun_path()
            measurement = measure(args)
        else:
            path = RESULTS / "scaling.json"
            if not path.exists():
                raise UsageError(f"no measurement in {path}; run with --measure first")
            measurement = json.loads(path.read_text())["measurement"]
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    worst = report(measurement)
    print(f"worst |predicted / measured - 1| = {100 * worst:.1f}% (target: within 25%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
