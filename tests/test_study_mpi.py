"""The study under mpirun: whole runs per rank, or data parallelism within each run. Either way every
planned run is trained exactly once and its record is complete."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MPIRUN

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--batches", "32,64", "--base-batch", "32", "--sweep-lrs", "0.01", "--seeds", "1",
        "--sweep-seeds", "1", "--image-size", "32", "--max-epochs", "1", "--patience", "1",
        "--kernels", "reference", "--analysis-examples", "32", "--surface-grid", "3",
        "--sharpness-maxiter", "1", "--interp-points", "3", "--noise-batches", "1"]


def plan_size(out, cache):
    """Runs in the plan, from the study's own dry run (no training)."""
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "study", "--out", str(out),
                             "--cache-dir", str(cache), "--dry-run", *TINY],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return sum(1 for line in result.stdout.splitlines() if line.startswith("run "))


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["runs", "data"])
def test_study_under_mpirun_trains_every_run_once(tmp_path, mode):
    out, cache = tmp_path / "study", tmp_path / "cache"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(MPIRUN), "-n", "2", sys.executable, str(ROOT / "run.py"), "study",
                             "--out", str(out), "--cache-dir", str(cache), "--parallel", mode, *TINY],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == plan_size(out, cache) > 0
    for run in runs:
        status = json.loads((run / "status.json").read_text())
        assert status["status"] in ("finished", "early_stopped"), run.name
        config = json.loads((run / "config.json").read_text())
        assert config["ranks"] == (2 if mode == "data" else 1)
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # trained once, 1 epoch
