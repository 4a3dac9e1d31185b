"""Process tuning (engine/tuning.py) is applied by the entry points, not by building or running a
model: a fresh interpreter with NumPy's BLAS on two threads is probed after each action for glibc's
heap setting (ops.numba_heap) and NumPy's BLAS thread count (ops.numba_blas)."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, skip_or_fail_in_ci

from ops.numba_blas import blas_threads
PROBE = """
import sys
sys.path.insert(0, {root!r})
{action}
from ops import numba_blas, numba_heap
print(numba_heap._applied, numba_blas.blas_threads("numpy"))
"""
BUILD_AND_STEP = """
import numpy as np
from engine.model import ModelConfig, build_model
model = build_model(ModelConfig(image_size=32), kernels="fast")
model.loss_and_grad(np.zeros((2, 3, 32, 32), np.float32), np.zeros(2, np.float32))
"""
CLI = "import run\nrun.main(['summary', '--image-size', '32'])"


def probe(action):
    """(heap setting applied, NumPy BLAS threads) after `action` in a fresh interpreter."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), action=action)], env=env,
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    applied, threads = out.stdout.split()[-2:]
    return applied, int(threads)


@pytest.fixture(scope="module")
def blas_found():
    if blas_threads("numpy") is None:
        skip_or_fail_in_ci("NumPy's OpenBLAS thread functions are not reachable in this build")


def test_building_and_running_a_model_leaves_the_process_alone(blas_found):
    assert probe(BUILD_AND_STEP) == ("None", 2)


def test_the_command_line_tunes_its_process_at_start(blas_found):
    assert probe(CLI) == ("True", 1)


def test_train_run_tunes_a_library_caller_process(monkeypatch):
    from parallel import LocalCommunicator
    from runner import RunSpec, UsageError, train_run
    calls = []
    monkeypatch.setattr("engine.tuning.tune_process", lambda: calls.append("tuned"))
    with pytest.raises(UsageError):  # an image size the net cannot take: refused after tuning
        train_run(RunSpec(image_size=7), None, LocalCommunicator(), log=lambda message: None)
    assert calls == ["tuned"]
