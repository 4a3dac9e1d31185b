"""The compile notice's trigger: numba's cache counts as cold exactly when it holds no index for
some fast kernel (a fresh NUMBA_CACHE_DIR), and warm once the kernels were compiled into it."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = "from engine.kernel_cache import kernel_cache_is_cold; print(kernel_cache_is_cold())"


def cold_in(cache_dir, before=""):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    result = subprocess.run([sys.executable, "-c", before + CHECK], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip() == "True"


def test_an_empty_cache_is_cold_and_a_filled_one_is_not(tmp_path):
    assert cold_in(tmp_path)
    # an index for one kernel is not enough: every fast kernel must have one
    (tmp_path / "numba_direct._round_up-1.py311.nbi").write_bytes(b"")
    assert cold_in(tmp_path)
    # the current default cache (filled by this suite's fast-kernel tests, or by this warm-up)
    warm_up = "from ops import block_numba, numba_sgd; block_numba.warmup(); numba_sgd.warmup(); "
    warm = subprocess.run([sys.executable, "-c", warm_up + CHECK], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == "False"
