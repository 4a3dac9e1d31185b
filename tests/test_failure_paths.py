"""What a user sees when things go wrong: a crash records status "failed" and exits 1; running out
of memory or disk space is one line saying what to change; a broken analysis input is one line and
exit 2; an interrupted run's hint repeats the launcher and never adds --resume to --overwrite."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import run

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--image-size", "32", "--batch", "16", "--lr", "0.05", "--kernels", "reference", "--quiet"]

# Runs run.main in a child process after replacing one function by a failure, so the exit code and
# the stderr are exactly what a user would get.
DRIVER = """
import errno, sys
sys.path.insert(0, {root!r})
import engine.train, run, storage.runfolder
{patch}
sys.exit(run.main({argv!r}))
"""
PATCHES = {
    "crash": "def fail(self):\n    raise RuntimeError('injected bug in the epoch loop')\n"
             "engine.train.Trainer.run_epoch = fail",
    "memory": "def fail(self, indices):\n    raise MemoryError('Unable to allocate 2.00 GiB for an "
              "array with shape (32, 4, 2048, 2048)')\nengine.train.Trainer.train_step = fail",
    "disk_full": "save = storage.runfolder.RunFolder.save_theta\n"
                 "def fail(self, kind, array):\n"
                 "    if kind == 'best':\n"
                 "        raise OSError(errno.ENOSPC, 'No space left on device', self.path + '/theta_best.npy')\n"
                 "    save(self, kind, array)\n"
                 "storage.runfolder.RunFolder.save_theta = fail",
}


def run_patched(patch, argv, timeout=300):
    code = DRIVER.format(root=str(ROOT), patch=PATCHES[patch], argv=list(argv))
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def run_cli(args, timeout=300):
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def status_of(out):
    return json.loads((out / "status.json").read_text())


def train_args(tmp_path, *extra):
    return [*TINY, "--data", "synthetic", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "run"), *extra]


def test_a_crash_records_failed_with_its_reason_and_exits_1(tmp_path):
    result = run_patched("crash", train_args(tmp_path, "--max-epochs", "1"))
    assert result.returncode == 1
    assert "injected bug in the epoch loop" in result.stderr  # a real bug keeps its traceback
    status = status_of(tmp_path / "run")
    assert status["status"] == "failed"
    assert status["reason"] == "RuntimeError: injected bug in the epoch loop"


def test_out_of_memory_is_one_line_naming_what_to_change(tmp_path):
    result = run_patched("memory", train_args(tmp_path, "--max-epochs", "1"))
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "out of memory" in lines[0] and "--image-size" in lines[0] and "--batch" in lines[0]
    status = status_of(tmp_path / "run")
    assert status["status"] == "failed" and "out of memory" in status["reason"]


def test_disk_full_at_the_end_is_one_line_and_resume_writes_what_was_lost(tmp_path):
    args = train_args(tmp_path, "--max-epochs", "2")
    result = run_patched("disk_full", args)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "no space left" in lines[0] and "theta_best.npy" in lines[0] and "--resume" in lines[0]
    out = tmp_path / "run"
    assert status_of(out)["status"] == "failed" and not (out / "theta_best.npy").exists()
    # with space again, the hint's command writes the final files from the last checkpoint
    resumed = run_cli([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert status_of(out)["status"] == "finished"
    checkpoint = np.load(out / "checkpoint.npz", allow_pickle=False)
    assert np.array_equal(np.load(out / "theta_best.npy", allow_pickle=False), checkpoint["theta_best"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("finished")
    result = run_cli([*TINY, "--data", "synthetic", "--max-epochs", "1", "--cache-dir",
                      base / "cache", "--out", base / "run"])
    assert result.returncode == 0, result.stderr
    return base / "run"


def assert_analyze_one_line(args, fragment):
    result = run_cli(["analyze", *args])
    assert result.returncode == 2, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0]


@pytest.mark.parametrize("content", ["garbage", "pickle"])
def test_analyze_refuses_a_broken_weights_file_in_one_line(tmp_path, finished_run, content):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for path in finished_run.iterdir():
        if path.is_file():
            (run_dir / path.name).write_bytes(path.read_bytes())
    theta = run_dir / "theta_best.npy"
    if content == "garbage":
        theta.write_bytes(b"\x93NUMPY this is not an array at all")
    else:
        np.save(theta, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    assert_analyze_one_line(["geometry", run_dir, "--out", tmp_path / "analysis"], "theta_best.npy")


def test_analyze_without_a_run_directory_is_one_line():
    assert_analyze_one_line(["geometry"], "RUN_DIR")
    assert_analyze_one_line([], "SUBCOMMAND")


def test_resume_hint_repeats_the_launcher_and_never_keeps_overwrite():
    argv = ["--batch", "64", "--overwrite", "--data", "my photos"]
    single = run.resume_command(argv, "runs/x", out_given=False, ranks=1)
    assert single == "python run.py --batch 64 --data 'my photos' --resume --out runs/x"
    parallel = run.resume_command([*argv, "--out", "r", "--resume"], "r", out_given=True, ranks=3)
    assert parallel == "mpirun -n 3 python run.py --batch 64 --data 'my photos' --out r --resume"


def cuda_gpu_present():
    """True when CuPy imports and sees a CUDA GPU."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy or no driver: no GPU
        return False


def test_analyze_on_cuda_is_one_line_without_a_gpu_and_matches_the_cpu_with_one(tmp_path, finished_run):
    args = ["sharpness", finished_run, "--examples", "16", "--maxiter", "2", "--space", "full",
            "--dtype", "float64", "--quiet"]
    if not cuda_gpu_present():
        assert_analyze_one_line([*args, "--device", "cuda", "--out", tmp_path / "gpu"], "--device cuda")
        return
    results = {}
    for device in ("cpu", "cuda"):
        result = run_cli(["analyze", *args, "--device", device, "--out", tmp_path / device])
        assert result.returncode == 0, result.stderr
        results[device] = json.loads((tmp_path / device / "sharpness.json").read_text())
    cpu, gpu = (results[d]["runs"][0]["spaces"]["full"] for d in ("cpu", "cuda"))
    assert gpu["loss"] == pytest.approx(cpu["loss"], rel=1e-10)
    assert gpu["phi"] == pytest.approx(cpu["phi"], rel=1e-6)
