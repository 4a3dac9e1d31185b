#!/usr/bin/env python
"""batchlab's command line: train the study's net (`python run.py ...`), score a run
(`python run.py evaluate RUN`), plot runs (`python run.py plot RUN...`), print the model
(`python run.py summary`), analyse runs (`python run.py analyze ...`), run the whole study
(`python run.py study ...`) and write its report (`python run.py report STUDY_DIR`). Under
`mpirun -n N` the same command trains data-parallel."""
import argparse
import contextlib
import errno
import os
import platform
import shlex
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from analysis.help_format import DefaultsFormatter, positive_float, positive_int
from parallel.errors import MPIUnavailableError
from parallel.messages import first_message
from parallel.threads import configure_threads

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4
HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = Path(os.environ.get("BATCHLAB_CACHE", Path.home() / ".cache" / "batchlab"))


class UsageError(Exception):
    """A user mistake in the command line: reported in one line, exit code 2."""


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def non_negative_float(text):
    """argparse type: a float >= 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def loss_levels(text):
    """argparse type: comma-separated positive training-loss levels, returned highest first."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()}, reverse=True)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"levels must be positive numbers, got {text!r}")
    return values


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def train_parser():
    """Arguments of the training command (defaults follow the study)."""
    p = OneLineParser(
        prog="run.py", formatter_class=DefaultsFormatter,
        description="Train the study's VGG-style cats-vs-dogs net. Under `mpirun -n N` the global "
                    "batch is split over N ranks (MirroredStrategy semantics). Other commands: "
                    "`run.py evaluate -h`, `run.py plot -h`, `run.py summary -h`, "
                    "`run.py analyze -h`, `run.py study -h`, `run.py report -h`.")
    p.add_argument("--data", default=None,
                   help="image folder (PetImages, Kaggle train/, cats_and_dogs_filtered, or ROOT/<class>/), "
                        "'cats_and_dogs_filtered' to download TensorFlow's 3,000 photos (68 MB), "
                        "'cats_vs_dogs' to download Microsoft's archive (787 MB), 'synthetic' for the "
                        "built-in synthetic set (default: the Microsoft archive if it was downloaded "
                        "before, else the synthetic set)")
    p.add_argument("--batch", type=positive_int, default=32, help="GLOBAL batch size (all ranks)")
    p.add_argument("--lr", type=positive_float, default=0.01, help="base learning rate")
    p.add_argument("--lr-scale", choices=("none", "linear", "sqrt"), default="none",
                   help="scale lr by batch/base-batch (linear: Goyal et al.)")
    p.add_argument("--base-batch", type=positive_int, default=32, help="batch size the base lr is for")
    p.add_argument("--warmup-epochs", type=non_negative_float, default=0.0,
                   help="ramp lr linearly from --lr to the scaled lr over this many epochs")
    p.add_argument("--momentum", type=non_negative_float, default=0.0, help="SGD momentum")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                   help="L2 penalty added to the gradient")
    p.add_argument("--max-epochs", type=positive_int, default=1000, help="upper limit on epochs")
    p.add_argument("--patience", type=positive_int, default=100,
                   help="stop after this many epochs without a better validation loss")
    p.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    p.add_argument("--image-size", type=positive_int, default=128,
                   help="images are resized to this many pixels square")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--kernels", choices=("reference", "fast"), default="fast",
                   help="readable NumPy/CuPy reference, or the fused kernels "
                        "(numba on the CPU, numba.cuda with --device cuda)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads per rank (default: cores / ranks on this node)")
    p.add_argument("--eval-batch", type=positive_int, default=256,
                   help="validation examples per forward chunk")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=0,
                   help="also checkpoint every N steps (0: only at the end of each epoch)")
    p.add_argument("--snapshot-levels", type=loss_levels, default=None,
                   help="save theta_loss<L>.npy when the epoch training loss first falls below each "
                        "level L, e.g. 0.6,0.5,0.4")
    p.add_argument("--out", default=None,
                   help="run directory, refused if it holds a run (default: runs/<settings>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image and download cache")
    p.add_argument("--sha256", default=None,
                   help="with --data cats_vs_dogs: the archive's expected sha256 (refused otherwise)")
    p.add_argument("--jfif-only", action="store_true",
                   help="keep only files with a JFIF header (TensorFlow Datasets' filter)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    return p


def summary_parser():
    """Arguments of `run.py summary`."""
    p = OneLineParser(prog="run.py summary", formatter_class=DefaultsFormatter,
                      description="The study's net layer by layer: output shape, parameters and "
                                  "where they start in the flat vector theta (like Keras' summary).")
    p.add_argument("--image-size", type=positive_int, default=128,
                   help="input images are this many pixels square")
    return p


def summary_command(argv):
    """Print the model table; returns the exit code."""
    from engine.model import ModelConfig, ModelConfigError
    from engine.summary import format_summary, summary_rows
    args = summary_parser().parse_args(argv)
    config = ModelConfig(image_size=args.image_size)
    try:
        rows = summary_rows(config)
    except ModelConfigError as error:
        raise UsageError(str(error)) from None
    print(format_summary(rows, f"the study's net at {args.image_size}x{args.image_size}"))
    return EXIT_OK


def requested_threads(argv):
    """Read --threads before anything imports numpy, so the thread variables take effect."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (
            argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value is not None:
            try:
                return max(1, int(value))
            except ValueError:
                return None
    return None


def git_commit():
    """The commit of this checkout, or 'unknown' outside git."""
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions():
    """Versions of what the numbers depend on."""
    import numpy
    versions = {"python": platform.python_version(), "numpy": numpy.__version__}
    for name in ("numba", "mpi4py", "cupy", "PIL", "scipy"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    return versions


def select_device(name, comm):
    """The array module for --device: numpy for cpu; cupy on GPU local_rank % n_gpus for cuda."""
    import numpy
    if name == "cpu":
        return numpy
    if name != "cuda":
        raise UsageError(f"unknown --device {name!r}; use cpu or cuda")
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001 - any failure means no usable GPU
        raise UsageError(f"--device cuda needs CuPy and a CUDA GPU ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'not available'})") from None
    if count < 1:
        raise UsageError("--device cuda: no CUDA GPU found")
    cupy.cuda.Device(comm.local_rank % count).use()
    return cupy


def default_out(args, dataset_name, comm_size):
    """runs/<data>-bs<batch>-lr<lr>-<scale>-s<seed>[-r<ranks>] for a run without --out."""
    data = Path(args.data).name if args.data else dataset_name
    name = f"{data}-bs{args.batch}-lr{args.lr:g}-{args.lr_scale}-s{args.seed}"
    return str(HERE / "runs" / (name + (f"-r{comm_size}" if comm_size > 1 else "")))


def load_data(args, comm, log):
    """Load (rank 0 first: it builds the cache; the others then read it)."""
    from imagedata import DataError, load_dataset

    def load():
        return load_dataset(args.data, image_size=args.image_size, cache_dir=Path(args.cache_dir),
                            jfif_only=args.jfif_only, log=log, expected_sha256=args.sha256,
                            show_progress=comm.is_root and not args.quiet)
    result, error = None, None
    for turn in ("root", "others"):
        if (turn == "root") == comm.is_root:
            try:
                result = load()
            except DataError as exc:
                error = str(exc)
        comm.barrier()
    rank, reason = first_message(comm, error)
    if reason is not None:
        raise UsageError(reason if rank == 0 else f"rank {rank}: {reason}")
    return result


def warm_up_kernels(comm, kernels, log):
    """Compile (or load from numba's cache) the fast kernels on rank 0 first: ranks compiling into
    one on-disk cache at once can race."""
    if kernels != "fast":
        return
    from engine.kernel_cache import COMPILE_NOTICE, kernel_cache_is_cold
    from ops import block_numba
    for turn in ("root", "others"):
        if (turn == "root") == comm.is_root:
            if comm.is_root and kernel_cache_is_cold():
                log(COMPILE_NOTICE)
            block_numba.warmup()
        comm.barrier()


def resume_command(argv, out, out_given, ranks):
    """The command that continues an interrupted run: the same arguments plus --resume (without
    --overwrite, which would delete the run), under the same launcher and rank count."""
    kept = [arg for arg in argv if arg != "--overwrite"]
    kept += [] if "--resume" in kept else ["--resume"]
    kept += [] if out_given else ["--out", out]
    launcher = f"mpirun -n {ranks} " if ranks > 1 else ""
    return f"{launcher}python run.py {shlex.join(kept)}"


def resource_problem(error):
    """One line saying what to change when `error` is a resource the user's settings ran out of
    (memory, disk space); None for any other error."""
    if isinstance(error, MemoryError):
        return (f"out of memory ({error or 'allocation failed'}); use a smaller --image-size, "
                "--batch or --eval-batch, or fewer ranks per node")
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {error.filename}" if error.filename else ""
        return (f"no space left on the device{where}; free some space there or choose another "
                "--out / --cache-dir (a training run then continues with --resume)")
    return None


@contextlib.contextmanager
def failure_recorded(run_dir, comm):
    """Mark the run "failed" in status.json, with the reason, when anything in the block raises
    (rank 0 writes; best effort: a full disk may refuse even that)."""
    try:
        yield
    except UsageError:
        raise
    except Exception as error:
        if comm.is_root:
            reason = resource_problem(error) or f"{type(error).__name__}: {error}"
            with contextlib.suppress(OSError):
                run_dir.write_status("failed", reason=reason)
        raise


def train_command(argv, comm):
    """Parse, validate, train; returns the exit code."""
    args = train_parser().parse_args(argv)
    from engine.model import ModelConfig, ModelConfigError
    from engine.rundir import RunDirectory
    from engine.train import TrainConfig

    def log(message):
        if comm.is_root and not args.quiet:
            print(message, flush=True)
    config = ModelConfig(image_size=args.image_size)
    try:
        config.validate()
    except ModelConfigError as error:
        raise UsageError(str(error)) from None
    if args.sha256 is not None and args.data != "cats_vs_dogs":
        raise UsageError("--sha256 pins the downloaded archive; use it with --data cats_vs_dogs")
    xp = select_device(args.device, comm)
    if args.device == "cuda" and args.kernels == "fast":
        args.kernels = "cuda"  # the numba.cuda kernels on CuPy arrays; "reference" stays the CuPy reference
    data = load_data(args, comm, log)
    if args.batch > len(data.train_y):
        raise UsageError(f"--batch {args.batch} is larger than the training set "
                         f"({len(data.train_y)} images)")
    train_config = TrainConfig(batch=args.batch, lr=args.lr, lr_scale=args.lr_scale,
                               base_batch=args.base_batch, warmup_epochs=args.warmup_epochs,
                               max_epochs=args.max_epochs, patience=args.patience, seed=args.seed,
                               momentum=args.momentum, weight_decay=args.weight_decay,
                               eval_batch=args.eval_batch, checkpoint_every=args.checkpoint_every,
                               snapshot_levels=tuple(args.snapshot_levels or ()))
    out = args.out or default_out(args, data.identity.get("name", "data"), comm.size)
    run_dir = RunDirectory(out)
    run_config = {"args": {k: v for k, v in vars(args).items() if k != "cache_dir"},
                  "effective_lr": train_config.effective_lr, "ranks": comm.size,
                  "threads_per_rank": int(os.environ.get("NUMBA_NUM_THREADS", "1")),
                  "dataset": data.identity, "model": {"image_size": config.image_size,
                                                      "filters": list(config.filters),
                                                      "dense": list(config.dense)},
                  "versions": package_versions(), "git_commit": git_commit()}
    error = None
    if comm.is_root:
        try:
            run_dir.prepare(run_config, resume=args.resume, overwrite=args.overwrite)
        except Exception as exc:  # noqa: BLE001 - RunDirError or an OSError, shown in one line
            error = str(exc)
    if comm.any_flag(error is not None):
        raise UsageError(error or "the run directory could not be prepared on rank 0")
    with failure_recorded(run_dir, comm):
        return train_prepared(args, argv, comm, config, data, train_config, xp, run_dir, out, log)


def train_prepared(args, argv, comm, config, data, train_config, xp, run_dir, out, log):
    """Build the model, resume if asked, train, report; returns the exit code."""
    from engine.model import build_model
    from engine.train import Trainer
    warm_up_kernels(comm, args.kernels, log)
    model = build_model(config, seed=args.seed, kernels=args.kernels, xp=xp)
    trainer = Trainer(model, data, comm, train_config, run_dir=run_dir, log=log,
                      progress=not args.quiet)
    if args.resume and comm.any_flag(comm.is_root and run_dir.file("checkpoint.npz").exists()):
        from engine.checkpoint import CheckpointError
        try:
            trainer.restore(run_dir.file("checkpoint.npz"))
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
        log(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    log(f"training {model.theta.size:,} parameters on {len(data.train_y):,} images "
        f"({data.identity.get('name')}), batch {args.batch} over {comm.size} rank(s), "
        f"lr {train_config.effective_lr:g}; run directory {out}")

    def request_stop(signum, _frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        log(f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint")
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    status = trainer.run()
    best = trainer.best
    if comm.is_root:
        if status == "interrupted":
            print(f"stopped at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}; continue with: "
                  f"{resume_command(argv, out, bool(args.out), comm.size)}", flush=True)
        elif status == "diverged":
            print(f"diverged: the loss or gradient became NaN/inf at step {trainer.global_step + 1} "
                  f"(lr {train_config.effective_lr:g}); recorded in {out}/status.json", flush=True)
        else:
            print(f"{status}: best val loss {best['val_loss']:.4f}, val acc {best['val_acc']:.4f} at epoch "
                  f"{best['epoch']}; {trainer.epoch} epochs; run directory {out}", flush=True)
            if not args.quiet:
                from analysis.next_steps import closing_block
                print(closing_block(out, data.identity.get("name")), flush=True)
    return {"diverged": EXIT_DIVERGED, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_OK)


def main(argv=None):
    """Entry point: choose the command, run it, turn user mistakes into one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_threads(requested_threads(argv))
    from parallel import LocalCommunicator, get_communicator
    comm = LocalCommunicator()
    try:
        comm = get_communicator()
        if argv and argv[0] == "analyze":
            from analysis.cli import main as analyze_main
            return analyze_main(argv[1:], comm)
        if argv and argv[0] == "study":
            from analysis.study import main as study_main
            return study_main(argv[1:], comm)
        if argv and argv[0] == "report":
            from analysis.report import main as report_main
            return report_main(argv[1:])
        if argv and argv[0] == "evaluate":
            from analysis.evaluate import main as evaluate_main
            return evaluate_main(argv[1:])
        if argv and argv[0] == "plot":
            from analysis.plot_runs import main as plot_main
            return plot_main(argv[1:])
        if argv and argv[0] == "summary":
            return summary_command(argv[1:])
        return train_command(argv, comm)
    except MPIUnavailableError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except UsageError as error:
        if comm.is_root:
            print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - a crash on one rank must end the whole job, not hang it
        problem = resource_problem(error)
        if problem is not None:
            print(f"error{f' on rank {comm.rank}' if comm.size > 1 else ''}: {problem}",
                  file=sys.stderr, flush=True)
            if comm.size > 1:
                comm.abort(EXIT_CRASH)
            return EXIT_CRASH
        if comm.size > 1:
            sys.stderr.write(f"rank {comm.rank} failed:\n{traceback.format_exc()}")
            sys.stderr.flush()
            comm.abort(EXIT_CRASH)
        raise


if __name__ == "__main__":
    sys.exit(main())
