#!/usr/bin/env python
"""batchlab's command line: train the study's net (`python run.py ...`), score a run
(`python run.py evaluate RUN`), plot runs (`python run.py plot RUN...`), print the model
(`python run.py summary`), analyse runs (`python run.py analyze ...`), run the whole study
(`python run.py study ...`) and write its report (`python run.py report STUDY_DIR`). Under
`mpirun -n N` the same command trains data-parallel."""
import argparse
import shlex
import sys
import traceback

from analysis.help_format import DefaultsFormatter, OneLineParser, positive_float, positive_int
from batchlab import __version__
from parallel.errors import MPIUnavailableError
from parallel.threads import configure_threads
from runner.errors import (EXIT_CRASH, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError,
                           resource_problem)


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
    p.add_argument("--cache-dir", default=None,
                   help="decoded-image and download cache (default: $BATCHLAB_CACHE or ~/.cache/batchlab)")
    p.add_argument("--sha256", default=None,
                   help="with --data cats_vs_dogs: the archive's expected sha256 (refused otherwise)")
    p.add_argument("--jfif-only", action="store_true",
                   help="keep only files with a JFIF header (TensorFlow Datasets' filter)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    p.add_argument("--version", action="version", version=f"batchlab {__version__}")
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


def resume_command(argv, out, out_given, ranks):
    """The command that continues an interrupted run: the same arguments plus --resume (without
    --overwrite, which would delete the run), under the same launcher and rank count."""
    kept = [arg for arg in argv if arg != "--overwrite"]
    kept += [] if "--resume" in kept else ["--resume"]
    kept += [] if out_given else ["--out", str(out)]
    launcher = f"mpirun -n {ranks} " if ranks > 1 else ""
    return f"{launcher}python run.py {shlex.join(kept)}"


def train_command(argv, comm):
    """Parse the flags into a RunSpec, train it, report; returns the exit code."""
    from runner import RunSpec, train_run
    args = train_parser().parse_args(argv)

    def log(message):
        if not args.quiet:
            print(message, flush=True)
    spec = RunSpec.from_mapping(vars(args))
    outcome = train_run(spec, args.out, comm, resume=args.resume, log=log, overwrite=args.overwrite)
    if comm.is_root:
        print(outcome_line(outcome, argv, bool(args.out), comm.size), flush=True)
        if outcome.status not in ("interrupted", "diverged") and not args.quiet:
            from analysis.next_steps import closing_block
            print(closing_block(str(outcome.out), outcome.dataset_name), flush=True)
    return {"diverged": EXIT_DIVERGED, "interrupted": EXIT_INTERRUPTED}.get(outcome.status, EXIT_OK)


def outcome_line(outcome, argv, out_given, ranks):
    """The line that ends a training command: where it stopped and how to go on."""
    if outcome.status == "interrupted":
        return (f"stopped at epoch {outcome.epoch + 1}, step {outcome.step_in_epoch}; continue with: "
                f"{resume_command(argv, outcome.out, out_given, ranks)}")
    if outcome.status == "diverged":
        return (f"diverged: the loss or gradient became NaN/inf at step {outcome.global_step + 1} "
                f"(lr {outcome.effective_lr:g}); recorded in {outcome.out}/status.json")
    best = outcome.best
    return (f"{outcome.status}: best val loss {best['val_loss']:.4f}, val acc {best['val_acc']:.4f} at "
            f"epoch {best['epoch']}; {outcome.epoch} epochs; run directory {outcome.out}")


def main(argv=None):
    """Entry point: choose the command, run it, turn user mistakes into one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_threads(requested_threads(argv))  # before numpy loads: it reads the thread budget once
    from engine.tuning import tune_process
    tune_process()
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
            from analysis.study.report import main as report_main
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
