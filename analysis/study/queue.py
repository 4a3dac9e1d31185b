"""Executing a study's plan in one process: the queue of training runs and analysis tasks.

Work is claimed through non-blocking file locks (fcntl.flock): every process walks the same ordered
list of runs and analyses, skips what is done, and takes the first item whose lock it gets. A lock
dies with its process, so a killed study leaves nothing stale, and any number of processes (MPI ranks
with `--parallel runs`, or separately started commands) share one study folder without
coordination. Runs are trained in-process through the runner's `train_run` (runner/): the numba
kernels load once per process, each run reopens the memory-mapped image cache (decoded once, on
disk), and the outcome tells diverged (recorded, the study goes on) from interrupted (the study stops; the same command
resumes).
"""
import time
import traceback

from storage.lock import file_lock
from storage.runfolder import RunFolder

from .folder import StudyFolder
from .plan import StudyError, plan_analyses, plan_runs
from .tasks import TERMINAL_STATUSES, TaskRunner, task_done
from .timing import run_timing, timing_done

POLL_SECONDS = 3.0


class StudyInterrupted(Exception):
    """The user stopped the study (Ctrl-C / SIGTERM); the same command continues it."""


def log(message):
    """One timestamped progress line on stdout."""
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Work:
    """One item of the queue: a training run or an analysis task."""

    def __init__(self, key, deps, is_done, execute, label):
        self.key, self.deps, self.is_done, self.execute, self.label = key, deps, is_done, execute, label


class Study:
    """Executes the plan in one process (one MPI rank)."""

    def __init__(self, out, settings, comm, parallel, cache_dir):
        self.out, self.settings, self.comm = out, settings, comm
        self.folder = StudyFolder(out)
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
    def run_status(self, name):
        """The status string of a run ('missing' before it starts)."""
        return RunFolder(self.folder.run(name)).read_status().get("status", "missing")

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
        folder = RunFolder(self.folder.run(planned.name))
        resume = folder.exists()
        self.say(f"training {planned.name} ({'resuming' if resume else 'new'}; "
                 f"{', '.join(planned.groups)})")
        started = time.perf_counter()
        try:
            outcome = train_run(planned.run_spec(self.settings, self.cache_dir), folder.path, comm,
                                resume=resume, log=lambda message: None)
        except UsageError as error:
            raise StudyError(f"{planned.name}: {error}") from None
        if outcome.status == "interrupted":
            raise StudyInterrupted(planned.name)
        self.trained += 1
        status = folder.read_status()
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
                claim = self.folder.lock(work.key)
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
