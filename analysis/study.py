"""`run.py study`: train the article's experiment plan and run its analyses, resumably.

Layout of a study folder:
    study.json            settings, and one record per invocation (wall time, outcome)
    runs/<name>/          one run.py run directory per distinct (batch, lr, seed)
    analysis/<task>.json  sharpness of every run; interpolation, surfaces, noise scale
    locks/<key>.lock      advisory locks: which process is working on what

Work is claimed through non-blocking file locks (fcntl.flock): every process walks the same ordered
list of runs and analyses, skips what is done, and takes the first item whose lock it gets. A lock
dies with its process, so a killed study leaves nothing stale, and any number of processes (MPI ranks
with `--parallel runs`, or separately started commands) share one study folder without
coordination. Without mpirun, `--workers N` (default: one per core) starts N worker processes of
this same command, one thread each: on a small machine, whole runs side by side use the cores far
better than threads inside one small-image run. Runs are trained in-process through the runner's
`train_run` (runner/): the numba kernels and the decoded images are loaded once per process
instead of once per run, and the outcome tells diverged (recorded, the study goes on) from
interrupted (the study stops; the same command resumes).
"""
import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone

from storage.lock import file_lock

from .help_format import DefaultsFormatter
from .study_plan import (PROFILES, StudyError, StudySettings, plan_analyses, plan_runs, plan_summary,
                         settings_from_args)
from .study_projection import projection_lines
from .study_timing import run_timing, timing_done
from .study_tasks import TERMINAL_STATUSES, TaskRunner, read_json, task_done, write_json_atomic

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_INCOMPLETE = 0, 2, 4, 5
POLL_SECONDS = 3.0
HEARTBEAT_SECONDS = 30.0


class StudyInterrupted(Exception):
    """The user stopped the study (Ctrl-C / SIGTERM); the same command continues it."""


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
    p = argparse.ArgumentParser(
        prog="run.py study", formatter_class=ProfileDefaultsFormatter,
        description="Run the article's experiment plan (batch sizes at the base "
        "lr, with linear lr scaling, the lr x batch sweep, and the analyses) into one resumable "
        "folder. Run it again to continue; finished runs are never repeated. Under mpirun, "
        "--parallel runs gives each rank whole runs, --parallel data trains each run over all ranks.")
    p.add_argument("--out", required=True,
                   help="study folder (created; reused to resume) (default: none, required)")
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


def log(message):
    """One timestamped progress line on stdout."""
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def now_iso():
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_study(out, settings):
    """Create or reopen the study folder's study.json; refuse settings that would change runs."""
    path = os.path.join(out, "study.json")
    with file_lock(os.path.join(out, "locks", "study.json.lock")):
        saved = read_json(path)
        if saved is None and os.path.exists(path):
            raise StudyError(f"{path} is unreadable; fix or remove it")
        if saved is not None:
            old = StudySettings.from_dict(saved["settings"]).run_settings()
            changed = [k for k, v in settings.run_settings().items() if old.get(k) != v]
            if changed:
                raise StudyError(f"{out} was started with different {', '.join(changed)} "
                                 f"({', '.join(f'{k}={old.get(k)!r}' for k in changed)}); "
                                 "use a new --out")
        record = saved or {"created": now_iso(), "invocations": []}
        record["settings"] = settings.as_dict()
        write_json_atomic(path, record)


class InvocationRecord:
    """This invocation's entry in study.json: written when it starts and refreshed every
    HEARTBEAT_SECONDS by a background thread, so the wall time of an invocation that is killed
    outright (SIGKILL, a lost machine) is still counted, to within one heartbeat."""

    def __init__(self, out, fields):
        self.path = os.path.join(out, "study.json")
        self.lock = os.path.join(out, "locks", "study.json.lock")
        self.entry = {"start": now_iso(), "end": now_iso(), "seconds": 0.0, **fields,
                      "outcome": "running"}
        self.started = time.perf_counter()
        self.stopped = threading.Event()
        self._write(append=True)
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _write(self, append=False, **fields):
        self.entry.update(end=now_iso(), seconds=time.perf_counter() - self.started, **fields)
        with file_lock(self.lock):
            record = read_json(self.path) or {"invocations": []}
            invocations = record.setdefault("invocations", [])
            if append:
                invocations.append(self.entry)
            else:  # the entry that starts at our start time is ours
                index = max(i for i, e in enumerate(invocations) if e.get("start") == self.entry["start"])
                invocations[index] = self.entry
            write_json_atomic(self.path, record)

    def _beat(self):
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            self._write()

    def finish(self, **fields):
        """Stop the heartbeat and write the final entry (outcome and counts)."""
        self.stopped.set()
        self.thread.join()
        self._write(**fields)


class Work:
    """One item of the queue: a training run or an analysis task."""

    def __init__(self, key, deps, is_done, execute, label):
        self.key, self.deps, self.is_done, self.execute, self.label = key, deps, is_done, execute, label


class Study:
    """Executes the plan in one process (one MPI rank)."""

    def __init__(self, out, settings, comm, parallel, cache_dir):
        self.out, self.settings, self.comm = out, settings, comm
        self.parallel, self.cache_dir = parallel, cache_dir
        self.runs = plan_runs(settings)
        self.tasks = plan_analyses(settings, self.runs)
        self.failed = set()
        self.trained = self.analysed = 0
        self.started = time.perf_counter()
        self.runner = TaskRunner(out, settings, cache_dir, log)
        self.verbose = comm.rank == 0 or parallel == "runs"
        self.prefix = ""

    def say(self, message):
        """Progress line (prefixed with the rank or worker when several work independently)."""
        if self.verbose:
            prefix = f"rank {self.comm.rank}: " if self.comm.size > 1 else self.prefix
            log(prefix + message)

    # ---- state -----------------------------------------------------------------------------
    def run_dir(self, name):
        """Folder of run `name`."""
        return os.path.join(self.out, "runs", name)

    def run_status(self, name):
        """The status string of a run ('missing' before it starts)."""
        status = read_json(os.path.join(self.run_dir(name), "status.json"))
        return status.get("status", "missing") if status else "missing"

    def run_done(self, name):
        """True once a run has reached a terminal status (finished, early_stopped, diverged)."""
        return self.run_status(name) in TERMINAL_STATUSES

    def runs_done_count(self):
        """How many planned runs have reached a terminal status."""
        return sum(self.run_done(r.name) for r in self.runs)

    # ---- executing ---------------------------------------------------------------------------
    def train(self, planned, comm):
        """Train one run in-process through the runner on `comm`."""
        from runner import UsageError, train_run
        folder = self.run_dir(planned.name)
        resume = os.path.exists(os.path.join(folder, "config.json"))
        self.say(f"training {planned.name} ({'resuming' if resume else 'new'}; "
                 f"{', '.join(planned.groups)})")
        started = time.perf_counter()
        try:
            outcome = train_run(planned.run_spec(self.settings, self.cache_dir), folder, comm,
                                resume=resume, log=lambda message: None)
        except UsageError as error:
            raise StudyError(f"{planned.name}: {error}") from None
        if outcome.status == "interrupted":
            raise StudyInterrupted(planned.name)
        self.trained += 1
        status = read_json(os.path.join(folder, "status.json")) or {}
        best = status.get("best_val_loss")
        self.say(f"{planned.name}: {status.get('status')}, best val loss "
                 f"{'n/a' if best is None else f'{best:.4f}'} at epoch {status.get('best_epoch')}, "
                 f"{status.get('epochs')} epochs, {time.perf_counter() - started:.0f} s; "
                 f"{self.runs_done_count()}/{len(self.runs)} runs done, study "
                 f"{(time.perf_counter() - self.started) / 60:.1f} min")

    def analyse(self, task):
        """Run one analysis task."""
        started = time.perf_counter()
        self.runner.run(task)
        self.analysed += 1
        self.say(f"analysis {task.name} done in {time.perf_counter() - started:.0f} s")

    def training_work(self, comm):
        """Queue items of the training runs."""
        return [Work(r.name, (), lambda r=r: self.run_done(r.name),
                     lambda r=r: self.train(r, comm), f"run {r.name}") for r in self.runs]

    def analysis_work(self):
        """Queue items of the analysis tasks."""
        return [Work(t.name, t.runs, lambda t=t: task_done(self.out, t),
                     lambda t=t: self.analyse(t), f"analysis {t.name}") for t in self.tasks]

    def deps_state(self, work):
        """'ready', 'wait' (a run it needs is not finished) or 'failed' (one failed here)."""
        if any(d in self.failed for d in work.deps):
            return "failed"
        return "ready" if all(self.run_done(d) for d in work.deps) else "wait"

    def drain(self, items):
        """Do every item not done yet, claiming each through its lock; wait for items other
        processes hold; return when nothing is left but failures."""
        while True:
            pending = [w for w in items if w.key not in self.failed and not w.is_done()]
            if not pending:
                return
            progressed = waiting = False
            for work in pending:
                state = self.deps_state(work)
                if state == "failed":
                    self.failed.add(work.key)
                    self.say(f"{work.label}: skipped, a run it needs failed")
                    progressed = True
                    break
                if state == "wait":
                    waiting = True
                    continue
                claim = os.path.join(self.out, "locks", f"{work.key}.lock")
                with file_lock(claim, blocking=False) as mine:
                    if not mine:
                        waiting = True
                        continue
                    if not work.is_done():
                        self.execute(work)
                    progressed = True
                    break
            if not progressed:
                if not waiting:
                    return
                time.sleep(POLL_SECONDS)

    def execute(self, work):
        """Run one item; a crash is logged and recorded as a failure of this invocation."""
        try:
            work.execute()
        except (StudyError, StudyInterrupted, KeyboardInterrupt):
            raise
        except Exception:  # noqa: BLE001 - one broken item must not stop the rest of the study
            self.failed.add(work.key)
            self.say(f"{work.label} FAILED:\n{traceback.format_exc()}")

    def train_data_parallel(self):
        """All ranks train each unfinished run together (the study's order)."""
        for planned in self.runs:
            if self.comm.any_flag(not self.run_done(planned.name)):
                self.train(planned, self.comm)

    def timing_work(self):
        """The timing pass as a queue item; `drain` reaches it only once everything else is done,
        so the process that takes it has the machine to itself (the others wait)."""
        from parallel.threads import available_cores
        cores = available_cores()
        return [Work("timing", (), lambda: timing_done(self.out, self.settings, cores),
                     lambda: run_timing(self.out, self.settings, cores, self.cache_dir, self.say),
                     "timing pass")]

    def run(self):
        """Train and analyse everything, then time the epochs; returns the outcome string."""
        from parallel import LocalCommunicator
        if self.parallel == "data" and self.comm.size > 1:
            self.train_data_parallel()
            self.drain(self.analysis_work())
            self.comm.barrier()
            self.say("timing pass skipped: it launches mpirun itself, so run the study once "
                     "without mpirun to measure it")
        else:
            self.drain(self.training_work(LocalCommunicator()) + self.analysis_work())
            if not self.failed and self.comm.size == 1:
                self.drain(self.timing_work())
        return "incomplete" if self.failed else "complete"


def load_study_dataset(settings, cache_dir):
    """The study's images (decoded into the cache on first use); DataError becomes StudyError."""
    from imagedata import DataError, load_dataset
    try:
        return load_dataset(settings.data, image_size=settings.image_size, cache_dir=cache_dir,
                            jfif_only=settings.jfif_only)
    except DataError as exc:
        raise StudyError(str(exc)) from None


def prepare_environment(settings, comm, cache_dir):
    """Build the image cache and compile the kernels rank by rank before the ranks start working
    (concurrent builds of one cache entry or one numba cache would only wait on each other)."""
    from engine.kernel_cache import warm_up_kernels
    from parallel import RankFailure, root_first
    try:
        root_first(comm, lambda: load_study_dataset(settings, cache_dir), expected=(StudyError,))
    except RankFailure as failure:
        raise StudyError(str(failure)) from None
    warm_up_kernels(comm, settings.kernels, log)


def run_workers(argv, workers, threads):
    """Start `workers` processes of this study command (one queue, shared through the locks), wait
    for them, and return the combined outcome. SIGTERM is passed on; Ctrl-C already reaches the
    whole process group, so SIGINT is not sent a second time (a second one aborts a run mid-step)."""
    command = [sys.executable, "-m", "batchlab", "study"] + list(argv)
    if "--threads" not in argv and not any(a.startswith("--threads=") for a in argv):
        command += ["--threads", str(threads)]
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where batchlab/ is
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
