"""`run.py study`: train the article's experiment plan and run its analyses into one resumable
folder (its layout: folder.py).

Without mpirun, `--workers N` (default: one per core) starts N worker processes of this same
command, one thread each: on a small machine, whole runs side by side use the cores far better than
threads inside one small-image run. The workers share the queue (queue.py) through its locks; under
mpirun the ranks are the workers.
"""
import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

from ..help_format import DefaultsFormatter, OneLineParser
from .plan import PROFILES, StudyError, StudySettings, plan_summary, settings_from_args
from .projection import measured_projection, projection_lines
from .queue import Study, StudyInterrupted, load_study_dataset, log, prepare_environment
from .record import InvocationRecord, open_study
from .tasks import task_done


EXIT_INCOMPLETE = 5  # some run or analysis failed; the others are done


def _int_list(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser():
    """Study options; every plan setting defaults to the chosen profile's value."""
    p = OneLineParser(
        prog="run.py study", formatter_class=ProfileDefaultsFormatter,
        description="Run the article's experiment plan (batch sizes at the base "
        "lr, with linear lr scaling, the lr x batch sweep, and the analyses) into one resumable "
        "folder. Run it again to continue; finished runs are never repeated. Under mpirun, "
        "--parallel runs gives each rank whole runs, --parallel data trains each run over all ranks.")
    p.add_argument("--out", default=None,
                   help="study folder (created; reused to resume) (default: none, required unless --project)")
    p.add_argument("--data", default=None, help="image folder (omit for the synthetic set)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                   help="quick: 32 px smoke version with the lr sweep; standard: 64 px, 3 seeds, "
                        "fits 150 min on 2 cores; paper: the article's settings")
    p.add_argument("--parallel", choices=("runs", "data"), default="runs",
                   help="under mpirun: whole runs per rank, or data parallelism within each run")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache (default: run.py's)")
    p.add_argument("--workers", type=int, default=None,
                   help="without mpirun: worker processes sharing the queue (default: one per core)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per process, applied by run.py before numpy loads "
                        "(default: cores / workers, or cores / ranks under mpirun)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true", help="print the plan and what is done, train nothing")
    p.add_argument("--project", metavar="FOLDER",
                   help="print the plan's hours at the article's epoch counts from the whole epochs "
                        "measured in FOLDER (bench/results: one process, and the study's layout), train nothing")
    g = p.add_argument_group("plan (defaults from --profile)")
    g.add_argument("--batches", type=_int_list, help="batch sizes, e.g. 32,64,128,256")
    g.add_argument("--base-batch", type=int, help="batch size the base lr belongs to")
    g.add_argument("--base-lr", type=float, help="learning rate of the base row")
    g.add_argument("--sweep-lrs", type=_float_list, help="learning rates of the sweep")
    g.add_argument("--seeds", type=int, help="seeds of every headline configuration")
    g.add_argument("--trend-seeds", type=int,
                   help="seeds of the batches between the smallest and the largest")
    g.add_argument("--sweep-seeds", type=int, help="seeds of the other sweep cells")
    g.add_argument("--image-size", type=int, help="model input size in pixels")
    g.add_argument("--max-epochs", type=int, help="epoch cap of every run")
    g.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    g.add_argument("--eval-batch", type=int, help="validation examples per forward chunk")
    g.add_argument("--kernels", choices=("reference", "fast"), help="CPU kernels")
    g.add_argument("--jfif-only", action="store_true", default=None,
                   help="keep only files with a JFIF header (TensorFlow Datasets' filter)")
    g.add_argument("--snapshot-levels", type=_float_list,
                   help="training-loss levels at which every run saves its weights")
    g = p.add_argument_group("analyses (defaults from --profile)")
    g.add_argument("--analysis-examples", type=int,
                   help="seeded subset of examples per split for sharpness, surfaces and "
                        "interpolation (0: all)")
    g.add_argument("--surface-grid", type=int, help="points per axis of the 2-D surfaces")
    g.add_argument("--surface-extent", type=float, help="surfaces cover [-extent, extent]^2")
    g.add_argument("--sharpness-eps", type=_float_list, help="box sizes, e.g. 1e-3,5e-4")
    g.add_argument("--sharpness-maxiter", type=int, help="L-BFGS-B iterations")
    g.add_argument("--sharpness-space", choices=("full", "subspace", "both"),
                   help="full parameter space, a random subspace, or both")
    g.add_argument("--subspace-dim", type=int, help="dimension p of the random subspace")
    g.add_argument("--interp-points", type=int, help="alphas on [-1, 2]")
    g.add_argument("--noise-batches", type=int, help="batch pairs of the gradient-noise scale")
    return p


class ProfileDefaultsFormatter(DefaultsFormatter):
    """Shows a plan option's value in every profile ('(default: from --profile: paper 1000,
    standard 120, quick 150)') instead of argparse's None."""

    def _get_help_string(self, action):
        name = action.dest
        if action.option_strings and action.default is None and name in PLAN_FIELDS:
            fallback = getattr(StudySettings(), name)
            values = ", ".join(f"{profile} {_shown(PROFILES[profile].get(name, fallback))}"
                               for profile in PROFILES)
            return f"{action.help or ''} (default: from --profile: {values})".lstrip()
        return super()._get_help_string(action)


def _shown(value):
    """A plan value as the command line spells it."""
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


PLAN_FIELDS = {f.name for f in dataclasses.fields(StudySettings)} - {"data", "profile"}


def run_workers(argv, workers, threads):
    """Start `workers` processes of this study command (one queue, shared through the locks), wait
    for them, and return the combined outcome. SIGTERM is passed on; Ctrl-C already reaches the
    whole process group, so SIGINT is not sent a second time (a second one aborts a run mid-step)."""
    command = [sys.executable, "-m", "batchlab", "study"] + list(argv)
    if "--threads" not in argv and not any(a.startswith("--threads=") for a in argv):
        command += ["--threads", str(threads)]
    source_root = str(Path(__file__).resolve().parents[2])  # where batchlab/ is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root,
                                                                     os.environ.get("PYTHONPATH")]))}
    children = [subprocess.Popen(command + ["--worker"], env=env) for _ in range(workers)]
    log(f"started {workers} worker processes ({threads} thread(s) each): "
        + ", ".join(str(c.pid) for c in children))

    def forward(signum, _frame):
        if signum == signal.SIGTERM:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if EXIT_USAGE in codes:
        raise StudyError("a worker stopped on a usage error (see above)")
    if EXIT_INTERRUPTED in codes or any(c < 0 for c in codes):
        raise StudyInterrupted("workers")
    return "complete" if all(c == EXIT_OK for c in codes) else "incomplete"


def describe_plan(study):
    """Print every run and task with its state (for --dry-run)."""
    for r in study.runs:
        print(f"run  {r.name:<22} {study.run_status(r.name):<14} {', '.join(r.groups)}")
    for t in study.tasks:
        print(f"task {t.name:<32} {'done' if task_done(study.out, t) else 'to do'}")


def main(argv=None, comm=None):
    """Entry point of `run.py study`; returns 0 when everything is done, 4 when interrupted,
    5 when some item failed, 2 for a usage error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if comm is None:
        from parallel import get_communicator
        comm = get_communicator()
    try:
        settings = settings_from_args(args)
        if args.project:
            if comm.rank == 0:
                print(measured_projection(settings, args.project), end="")
            return EXIT_OK
        if args.out is None:
            raise StudyError("--out is required: the study folder to create or resume")
        if settings.data is not None:
            settings.data = os.path.abspath(settings.data)
        out = os.path.abspath(args.out)
        os.makedirs(out, exist_ok=True)
        if comm.rank == 0:
            open_study(out, settings)
        comm.barrier()
        study = Study(out, settings, comm, args.parallel, args.cache_dir)
        if args.dry_run:
            if comm.rank == 0:
                print(plan_summary(settings))
                describe_plan(study)
                data = load_study_dataset(settings, args.cache_dir)
                for line in projection_lines(settings, len(data.train_y), len(data.val_y)):
                    print(line, flush=True)
            return EXIT_OK
        from parallel.threads import available_cores
        if args.workers is not None and args.workers < 1:
            raise StudyError("--workers must be at least 1")
        if comm.size > 1 and (args.workers or 1) > 1:
            raise StudyError("--workers is for a single process; under mpirun the ranks are the workers")
        workers = 1 if (args.worker or comm.size > 1) else (args.workers or available_cores())
        if args.worker:
            study.prefix = f"worker {os.getpid()}: "
            prepare_environment(settings, comm, args.cache_dir)
            return {"complete": EXIT_OK, "incomplete": EXIT_INCOMPLETE}[study.run()]
        study.say(f"{plan_summary(settings)}; {study.runs_done_count()} runs already done; "
                  + (f"{workers} worker processes" if workers > 1 else
                     f"{comm.size} rank(s), parallel {args.parallel}"))
        started = time.perf_counter()
        invocation = InvocationRecord(out, {"ranks": comm.size, "workers": workers,
                                            "parallel": args.parallel}) if comm.rank == 0 else None
        outcome = "interrupted"
        try:
            prepare_environment(settings, comm, args.cache_dir)
            if workers > 1:
                outcome = run_workers(argv, workers, max(1, available_cores() // workers))
            else:
                outcome = study.run()
        finally:
            if invocation is not None:
                invocation.finish(trained_by_rank0=study.trained, analysed_by_rank0=study.analysed,
                                  outcome=outcome)
    except StudyError as error:
        if comm.rank == 0:
            print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except (StudyInterrupted, KeyboardInterrupt):
        print(f"study interrupted; run the same command again to continue ({args.out})",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    if outcome == "incomplete":
        study.say(f"finished with failures ({', '.join(sorted(study.failed)) or 'see the workers above'}); "
                  "run the same command again to retry them")
        return EXIT_INCOMPLETE
    if comm.rank == 0:
        log(f"study complete in {(time.perf_counter() - started) / 60:.1f} min; "
            f"write the report with: run.py report {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
