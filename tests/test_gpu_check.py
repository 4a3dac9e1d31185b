"""bench/gpu_check.sh, the unattended GPU check: its argument parsing and its dry run (CI has no GPU)."""
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.sh"


def run_script(args, out=None):
    env = {key: value for key, value in os.environ.items() if key != "OUT"}
    env["PYTHON"] = sys.executable
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def test_dry_run_lists_every_step_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = run_script(["--dry-run"], out)
    assert result.returncode == 0, result.stderr
    steps = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert steps == ["env", "kernel_tests", "model_check", "train", "step_time"]
    assert "run.py --device cuda --max-epochs 2" in result.stdout
    limits = [int(line.split("(")[1].split()[0]) for line in result.stdout.splitlines()[1:]]
    assert sum(limits) < 8 * 60  # the whole check fits the 8 minutes it is given
    written = set(re.findall(r"\$OUT/([\w.]+)", result.stdout)) | {"step_time_cuda.json",
                                                                     "step_time_cuda.md"}
    assert len(written) <= 8
    assert not out.exists()


def test_usage_errors_are_one_line_with_exit_2(tmp_path):
    for args, out, fragment in ((["--bogus"], tmp_path, "unknown argument"),
                                (["--dry-run"], None, "set OUT")):
        result = run_script(args, out)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and fragment in result.stderr
