"""The command line as a user meets it: bad input gives one line and exit 2; kills and signals lose
nothing; a resumed run is bit-identical to an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import MPIRUN
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--image-size", "32", "--batch", "16", "--lr", "0.05"]


def run_cli(args, cache, timeout=300, **kwargs):
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args, "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def cuda_gpu_present():
    """True when CuPy imports and sees a CUDA GPU (then --device cuda must work, not fail)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no device: no GPU
        return False


def assert_one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and fragment in lines[0]


def write_images(folder, count, size=40):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")


@pytest.mark.parametrize("args,fragment", [
    (["--batch", "0"], "--batch"), (["--batch", "-4"], "--batch"), (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"), (["--image-size", "20"], "too small"),
    (["--device", "tpu"], "unknown --device"),
    (["--lr-scale", "cubic"], "--lr-scale"), (["--batch", "100000"], "larger than the training set"),
    (["--checkpoint-every", "-3"], "--checkpoint-every"), (["--sha256", "ab" * 32], "--sha256"),
    (["--data", "cats_vs_dogs", "--sha256", "abc"], "64 hexadecimal"),
])
def test_bad_arguments_give_one_line(tmp_path, args, fragment):
    result = run_cli([*SMALL, *args, "--out", str(tmp_path / "run")], tmp_path / "cache")
    assert_one_line_error(result, fragment)


def test_device_cuda_trains_on_a_gpu_and_says_so_in_one_line_without(tmp_path):
    result = run_cli([*SMALL, "--device", "cuda", "--max-epochs", "1", "--quiet",
                      "--out", str(tmp_path / "run")], tmp_path / "cache")
    if not cuda_gpu_present():
        assert_one_line_error(result, "--device cuda")
        return
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["args"]["kernels"] == "cuda"
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_bad_data_folders_give_one_line(tmp_path):
    cache = tmp_path / "cache"
    assert_one_line_error(run_cli(["--data", str(tmp_path / "missing")], cache), "missing")
    (tmp_path / "empty").mkdir()
    assert run_cli(["--data", str(tmp_path / "empty")], cache).returncode == 2
    write_images(tmp_path / "one" / "cats", 4)
    assert_one_line_error(run_cli(["--data", str(tmp_path / "one"), *SMALL], cache), "class")
    for name in ("cats", "dogs"):
        folder = tmp_path / "corrupt" / name
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"{i}.jpg").write_bytes(b"not an image at all")
    assert run_cli(["--data", str(tmp_path / "corrupt"), *SMALL], cache).returncode == 2


def test_occupied_run_directory_and_corrupt_checkpoint(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    first = run_cli([*SMALL, "--max-epochs", "1", "--out", str(out), "--quiet"], cache)
    assert first.returncode == 0, first.stderr
    assert_one_line_error(run_cli([*SMALL, "--max-epochs", "1", "--seed", "5", "--out", str(out)],
                                  cache), "already holds a run")
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    assert_one_line_error(run_cli([*SMALL, "--max-epochs", "2", "--out", str(out), "--resume"], cache),
                          "checkpoint")


def final_state(out):
    theta = np.load(out / "theta_final.npy", allow_pickle=False)
    metrics = [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
               for line in (out / "metrics.jsonl").read_text().splitlines()]
    return theta, metrics


def start(args, cache):
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args, "--cache-dir", str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path, process, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out waiting for a checkpoint"
        time.sleep(0.05)


def start_until_checkpoint(out, cache, every):
    """Start a 3-epoch run checkpointing every `every` steps; return (args, process) once the first
    checkpoint is on disk, i.e. with the run mid-way."""
    args = [*SMALL, "--max-epochs", "3", "--kernels", "reference", "--out", str(out),
            "--checkpoint-every", str(every)]
    process = start(args, cache)
    wait_for(out / "checkpoint.npz", process)
    return args, process


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("whole")
    args = [*SMALL, "--max-epochs", "3", "--kernels", "reference", "--out", str(base / "run")]
    result = run_cli(args, base / "cache")
    assert result.returncode == 0, result.stderr
    return base / "cache", final_state(base / "run")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, uninterrupted):
    cache, (theta, metrics) = uninterrupted
    out = tmp_path / "run"
    args, process = start_until_checkpoint(out, cache, every=7)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = run_cli([*args, "--resume"], cache)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    theta_resumed, metrics_resumed = final_state(out)
    assert np.array_equal(theta, theta_resumed)
    assert metrics == metrics_resumed


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_exits_cleanly(tmp_path, uninterrupted, signum):
    cache, (theta, _) = uninterrupted
    out = tmp_path / "run"
    args, process = start_until_checkpoint(out, cache, every=5)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    if process.returncode == 0:  # the run was already finishing; nothing to resume
        return
    assert process.returncode == 4, stderr
    assert "--resume" in stdout and "Traceback" not in stderr
    assert json.loads((out / "status.json").read_text())["status"] == "interrupted"
    resumed = run_cli([*args, "--resume"], cache)
    assert resumed.returncode == 0, resumed.stderr
    assert np.array_equal(theta, final_state(out)[0])


@pytest.mark.mpi
def test_sigkill_under_mpirun_then_resume_is_bit_identical(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}

    def command(out, *extra):
        return [str(MPIRUN), "-n", "2", sys.executable, str(ROOT / "run.py"), *SMALL,
                "--max-epochs", "2", "--kernels", "reference", "--cache-dir", str(cache),
                "--out", str(out), *extra]
    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, env=env,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "cut"
    process = subprocess.Popen(command(out, "--checkpoint-every", "7"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    wait_for(out / "checkpoint.npz", process)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both ranks die at once
    process.wait()
    resumed = subprocess.run(command(out, "--checkpoint-every", "7", "--resume"), capture_output=True,
                             text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    theta, metrics = final_state(tmp_path / "whole")
    theta_resumed, metrics_resumed = final_state(out)
    assert np.array_equal(theta, theta_resumed)
    assert metrics == metrics_resumed
