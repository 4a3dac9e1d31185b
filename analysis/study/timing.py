"""The study's timing pass: seconds per epoch measured as the article measured them (finding 3).

Runs that train side by side share the cores, so their own epoch times say more about their
neighbours than about the batch size. After every run and analysis of the study is done, one
process trains each batch size for a few epochs on an otherwise idle machine — first on 1 rank
with every core, then on 2 ranks (mpirun) — strictly one command at a time. The first epoch of each
is a warm-up (page faults, caches) and is not counted; the others are the samples.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..rundir import Run
from .folder import StudyFolder, read_json, write_json_atomic

TIMING_RANKS = (1, 2)
TIMED_EPOCHS = 4  # the first is the warm-up
RUN_PY = Path(__file__).resolve().parents[2] / "run.py"


def timing_params(settings, cores):
    """What the timing pass measures; a saved result with other parameters is measured again."""
    return {"batches": list(settings.batches), "ranks": list(TIMING_RANKS), "epochs": TIMED_EPOCHS,
            "image_size": settings.image_size, "lr": settings.base_lr, "cores": cores,
            "kernels": settings.kernels, "eval_batch": settings.eval_batch}


def timing_done(study_dir, settings, cores):
    """True when the timing pass was measured with the current parameters."""
    saved = read_json(StudyFolder(study_dir).timing_json)
    return saved is not None and saved.get("params") == timing_params(settings, cores)


def mpirun_executable():
    """mpirun next to this Python (the project's venv) or on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if beside.exists() else shutil.which("mpirun")


def timing_command(settings, batch, ranks, cores, folder, cache_dir):
    """The training command of one timed configuration."""
    command = [sys.executable, str(RUN_PY), "--batch", str(batch), "--lr", repr(settings.base_lr),
               "--image-size", str(settings.image_size), "--max-epochs", str(TIMED_EPOCHS),
               "--patience", str(TIMED_EPOCHS + 1), "--eval-batch", str(settings.eval_batch),
               "--kernels", settings.kernels, "--seed", "0", "--threads", str(max(1, cores // ranks)),
               "--out", folder, "--overwrite", "--quiet"]
    if settings.data is not None:
        command += ["--data", settings.data]
    if settings.jfif_only:
        command.append("--jfif-only")
    if cache_dir:
        command += ["--cache-dir", cache_dir]
    if ranks > 1:
        launcher = mpirun_executable()
        if launcher is None:
            return None
        command = [launcher, "-n", str(ranks)] + command
    return command


def run_timing(study_dir, settings, cores, cache_dir=None, log=print):
    """Measure every (ranks, batch) configuration one after another and write timing.json."""
    entries = []
    for ranks in TIMING_RANKS:
        for batch in settings.batches:
            folder = StudyFolder(study_dir).timing_run(batch, ranks)
            command = timing_command(settings, batch, ranks, cores, folder, cache_dir)
            if command is None:
                log(f"timing bs {batch} on {ranks} ranks: skipped (no mpirun)")
                continue
            load = os.getloadavg()[0]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                log(f"timing bs {batch} on {ranks} ranks failed: {result.stderr.strip()[-300:]}")
                continue
            metrics = Run(folder).read_metrics()
            seconds = [m["train_seconds"] + m["eval_seconds"] for m in metrics]
            entries.append({"batch": batch, "ranks": ranks, "threads_per_rank": max(1, cores // ranks),
                            "epoch_seconds": seconds, "samples": seconds[1:],
                            "train_seconds": [m["train_seconds"] for m in metrics][1:],
                            "load_before": load})
            log(f"timing bs {batch} on {ranks} rank(s): "
                + ", ".join(f"{s:.2f}" for s in seconds[1:]) + " s per epoch")
    write_json_atomic(StudyFolder(study_dir).timing_json, {"params": timing_params(settings, cores),
                                               "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                               "entries": entries})
