"""The compile notice's trigger: numba's cache counts as cold exactly when it holds no index for
some fast kernel (a fresh NUMBA_CACHE_DIR), and warm once the kernels were compiled into it; and
the kernels' files record the files whose code they compile in, so the cache cannot go stale."""
import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops import numba_direct, numba_gemm, numba_winograd

ROOT = Path(__file__).resolve().parent.parent
CHECK = "from engine.kernel_cache import kernel_cache_is_cold; print(kernel_cache_is_cold())"


# where numba would put each fast kernel's index under NUMBA_CACHE_DIR, named as numba names it
INDEX_NAMES = """
import sys
from pathlib import Path
from engine.kernel_cache import _dispatchers
for d in _dispatchers():
    module = d.py_func.__module__.rsplit(".", 1)[-1]
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    name = f"{module}.{d.py_func.__qualname__}-{d.py_func.__code__.co_firstlineno}.{tag}.nbi"
    print(Path(d.stats.cache_path, name).relative_to(sys.argv[1]))
"""


def run_with_cache(cache_dir, code):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    result = subprocess.run([sys.executable, "-c", code, str(cache_dir)], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def cold_in(cache_dir):
    return run_with_cache(cache_dir, CHECK).strip() == "True"


def test_an_empty_cache_is_cold_and_a_filled_one_is_not(tmp_path):
    assert cold_in(tmp_path)
    # every fast kernel must have an index where numba looks for it: all but one is still cold
    indexes = [tmp_path / line for line in run_with_cache(tmp_path, INDEX_NAMES).split()]
    assert len(indexes) >= 10 and all(path.is_relative_to(tmp_path) for path in indexes)
    for path in indexes[:-1]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert cold_in(tmp_path)
    indexes[-1].write_bytes(b"")
    assert not cold_in(tmp_path)
    # the current default cache (filled by this suite's fast-kernel tests, or by this warm-up)
    warm_up = ("from ops import block_numba, numba_dense, numba_sgd; block_numba.warmup(); numba_dense.warmup(); "
               "numba_sgd.warmup(); ")
    warm = subprocess.run([sys.executable, "-c", warm_up + CHECK], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == "False"


@pytest.mark.parametrize("module", [numba_direct, numba_gemm, numba_winograd])
def test_cached_kernels_record_the_files_whose_code_they_compile_in(module):
    # numba's on-disk cache is invalidated only by a change to the kernel's own file: a helper it
    # inlines from another file could change and leave stale compiled code behind, unless the
    # kernel's file records that file's digest (and so must change with it)
    source = Path(module.__file__)
    imported = {f"{node.module}.py" for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    assert imported == set(module.CACHE_DEPENDS_ON)
    for name, digest in module.CACHE_DEPENDS_ON.items():
        actual = hashlib.sha256((source.parent / name).read_bytes()).hexdigest()[:16]
        assert actual == digest, f"ops/{name} changed: set CACHE_DEPENDS_ON[{name!r}] = {actual!r} in ops/{source.name}"
