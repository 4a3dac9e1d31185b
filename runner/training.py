"""`train_run`: what one training run needs around the engine's Trainer (data, device, kernel
warm-up, run folder and its config.json, signals, the failure record), without any command line."""
import contextlib
import os
import platform
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import UsageError, resource_problem

SOURCE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its status (finished, early_stopped, diverged, interrupted), where it
    stopped, its best epoch, and the folder it wrote."""

    status: str
    out: Path
    epoch: int
    step_in_epoch: int
    global_step: int
    best: dict
    effective_lr: float
    dataset_name: str


def git_commit():
    """The commit of this source tree, or 'unknown' outside git (an installed copy)."""
    try:
        return subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True,
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
    """The array module of a device: numpy for cpu; cupy on GPU local_rank % n_gpus for cuda."""
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


def load_data(spec, comm, log):
    """Load (rank 0 first: it builds the cache; the others then read it)."""
    from imagedata import DataError, load_dataset
    from parallel import RankFailure, root_first

    def load():
        return load_dataset(spec.data, image_size=spec.image_size,
                            cache_dir=Path(spec.cache_dir) if spec.cache_dir else None,
                            jfif_only=spec.jfif_only, log=log, expected_sha256=spec.sha256,
                            show_progress=comm.is_root and not spec.quiet)
    try:
        return root_first(comm, load, expected=(DataError,))
    except RankFailure as failure:
        raise UsageError(str(failure)) from None


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


@contextlib.contextmanager
def stop_on_signals(trainer, log):
    """While training: the first SIGINT/SIGTERM lets the current step finish and checkpoint, a
    second one interrupts at once; the previous handlers come back afterwards."""
    def request_stop(signum, _frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        log(f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint")
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_run(spec, out, comm, resume=False, log=print, overwrite=False):
    """Train the run `spec` into folder `out` (None: runs/<spec.default_name> under the current
    folder) on communicator `comm`; continue the run there when `resume`, replace one when
    `overwrite`. `log` receives progress lines on rank 0. Returns a RunOutcome; a user mistake
    raises UsageError, and any other failure is recorded in status.json before it propagates."""
    from engine.model import ModelConfig, ModelConfigError
    from engine.tuning import tune_process
    from storage.runfolder import RunFolder
    tune_process()  # the command line did already; a library caller's process gets it here

    def say(message):
        if comm.is_root:
            log(message)
    config = ModelConfig(image_size=spec.image_size)
    try:
        config.validate()
    except ModelConfigError as error:
        raise UsageError(str(error)) from None
    if spec.sha256 is not None and spec.data != "cats_vs_dogs":
        raise UsageError("--sha256 pins the downloaded archive; use it with --data cats_vs_dogs")
    xp = select_device(spec.device, comm)
    if spec.device == "cuda" and spec.kernels == "fast":
        spec = replace(spec, kernels="cuda")  # numba.cuda kernels on CuPy arrays; "reference" stays CuPy
    data = load_data(spec, comm, say)
    if spec.batch > len(data.train_y):
        raise UsageError(f"--batch {spec.batch} is larger than the training set "
                         f"({len(data.train_y)} images)")
    dataset_name = data.identity.get("name", "data")
    out = Path(out) if out else Path("runs") / spec.default_name(dataset_name, comm.size)
    train_config = spec.train_config()
    run_dir = RunFolder(out)
    run_config = {"args": spec.record(out, resume=resume, overwrite=overwrite),
                  "effective_lr": train_config.effective_lr, "ranks": comm.size,
                  "threads_per_rank": int(os.environ.get("NUMBA_NUM_THREADS", "1")),
                  "dataset": data.identity, "model": {"image_size": config.image_size,
                                                      "filters": list(config.filters),
                                                      "dense": list(config.dense)},
                  "versions": package_versions(), "git_commit": git_commit()}
    error = None
    if comm.is_root:
        try:
            run_dir.prepare(run_config, resume=resume, overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - RunFolderError or an OSError, shown in one line
            error = str(exc)
    if comm.any_flag(error is not None):
        raise UsageError(error or "the run directory could not be prepared on rank 0")
    with failure_recorded(run_dir, comm):
        return _train_prepared(spec, out, comm, resume, say, config, data, train_config, xp, run_dir)


def _train_prepared(spec, out, comm, resume, say, config, data, train_config, xp, run_dir):
    """Build the model, restore the checkpoint when resuming, train; returns the RunOutcome."""
    from engine.kernel_cache import warm_up_kernels
    from engine.model import build_model
    from engine.train import Trainer
    warm_up_kernels(comm, spec.kernels, say)
    model = build_model(config, seed=spec.seed, kernels=spec.kernels, xp=xp)
    trainer = Trainer(model, data, comm, train_config, run_dir=run_dir, log=say,
                      progress=not spec.quiet)
    if resume and comm.any_flag(comm.is_root and run_dir.has_checkpoint()):
        from engine.checkpoint import CheckpointError
        try:
            trainer.restore(run_dir.checkpoint)
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
        say(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
    say(f"training {model.theta.size:,} parameters on {len(data.train_y):,} images "
        f"({data.identity.get('name')}), batch {spec.batch} over {comm.size} rank(s), "
        f"lr {train_config.effective_lr:g}; run directory {out}")
    with stop_on_signals(trainer, say):
        status = trainer.run()
    return RunOutcome(status=status, out=out, epoch=trainer.epoch, step_in_epoch=trainer.step_in_epoch,
                      global_step=trainer.global_step, best=dict(trainer.best),
                      effective_lr=train_config.effective_lr,
                      dataset_name=data.identity.get("name"))
