"""Shared test fixtures: a small in-memory two-class image set with the loader's batch interface,
and the `mpi` marker for tests that launch mpirun."""
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
SHARED_DATA = Path(os.environ.get("BATCHLAB_PHOTOS",
                                  ROOT.parent / "shared" / "data" / "cats_and_dogs_filtered"))
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")


def mpi_missing():
    """Why the MPI tests cannot run here (no mpirun, or no mpi4py), or None when they can."""
    if MPIRUN is None:
        return "mpirun is not installed (pip install mpich)"
    if importlib.util.find_spec("mpi4py") is None:  # found without initialising MPI here
        return "mpi4py is not installed (pip install mpi4py)"
    return None


def skip_or_fail_in_ci(reason):
    """Skip a test whose prerequisite (MPI, the shared photos, a library hook) is missing here; under
    CI=true, where every prerequisite is installed or laid out, the same absence is a failure, so CI
    never silently loses that coverage."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    config.addinivalue_line("markers", "mpi: launches mpirun; skipped where MPI is missing, "
                                       "but fails under CI=true so CI never loses MPI coverage")


def pytest_runtest_setup(item):
    """Skip an `mpi` test where MPI is missing, except under CI=true, where that is a failure."""
    if item.get_closest_marker("mpi") is None:
        return
    missing = mpi_missing()
    if missing is not None:
        skip_or_fail_in_ci(f"{missing}: the data-parallel tests cannot run")


class ArrayData:
    """uint8 NCHW images and 0/1 labels in memory, served like imagedata.Dataset.batch/pixels."""

    def __init__(self, train_x, train_y, val_x, val_y):
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        self.identity = {"name": "test-arrays", "n_train": len(train_y), "n_val": len(val_y)}

    def batch(self, split, indices):
        x = self.train_x if split == "train" else self.val_x
        y = self.train_y if split == "train" else self.val_y
        return x[indices].astype(np.float32) / 255.0, y[indices].astype(np.float32)

    def pixels(self, split, indices):
        x = self.train_x if split == "train" else self.val_x
        y = self.train_y if split == "train" else self.val_y
        from ops.pixels import PixelRows
        return PixelRows(x, indices), y[indices].astype(np.float32)  # as imagedata serves them


def make_array_data(n_train=48, n_val=16, size=32, seed=0):
    """Two learnable classes: class 1 images are brighter in their top half."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = (np.arange(n) % 2).astype(np.uint8)
        x = rng.integers(0, 160, size=(n, 3, size, size)).astype(np.uint8)
        x[y == 1, :, : size // 2] += 90
        return x, y
    return ArrayData(*split(n_train), *split(n_val))
