"""batchlab installs as a package: `pip install .` into a fresh virtual environment, then the
`batchlab` command and `python -m batchlab` work from a folder outside the checkout (the version,
the help, and a 1-epoch training on the synthetic set). The fresh environment borrows this one's
installed libraries through a .pth file, so the install needs no network (--no-deps,
--no-build-isolation) and takes seconds."""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirement_lines(text):
    """Requirement specifiers of a requirements file, quotes and spaces normalised."""
    return {re.sub(r"\s+", "", line).replace('"', "'") for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def test_requirements_txt_is_the_dependencies_plus_the_test_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = requirement_lines("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
    assert requirement_lines((ROOT / "requirements.txt").read_text()) == declared
    assert not any(r.startswith("pytest") for r in project["dependencies"])


def source_copy(folder):
    """What the package is built from, copied (pip builds in the source tree and leaves build/ and
    *.egg-info there): pyproject.toml, run.py and the packages pyproject lists."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name in ("pyproject.toml", *(module + ".py" for module in project["py-modules"])):
        shutil.copy2(ROOT / name, folder / name)
    for package in (name for name in project["packages"] if "." not in name):  # subpackages come along
        shutil.copytree(ROOT / package, folder / package,
                        ignore=shutil.ignore_patterns("__pycache__", "results"))
    return folder


def test_pip_install_gives_a_working_batchlab_command(tmp_path):
    (tmp_path / "source").mkdir()
    source = source_copy(tmp_path / "source")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # numpy, pip, setuptools...
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                              "--no-build-isolation", "--disable-pip-version-check", str(source)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(NUMBA_NUM_THREADS="1", BATCHLAB_CACHE=str(tmp_path / "cache"))
    command = venv / "bin" / "batchlab"

    def batchlab(*args, via=(str(command),)):
        return subprocess.run([*via, *args], capture_output=True, text=True, timeout=300, cwd=elsewhere,
                              env=env)
    version = batchlab("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"batchlab {project_version()}"
    assert batchlab("--version", via=(str(python), "-m", "batchlab")).stdout == version.stdout
    helped = batchlab("--help")
    assert helped.returncode == 0 and "--batch" in helped.stdout and "--lr-scale" in helped.stdout
    assert batchlab("study", "--help").returncode == 0
    located = subprocess.run([str(python), "-c", "import run, runner; print(run.__file__, runner.__file__)"],
                             capture_output=True, text=True, cwd=elsewhere, env=env, check=True)
    assert all(str(ROOT) not in path and str(source) not in path
               for path in located.stdout.split())  # the installed copy ran
    trained = batchlab("--data", "synthetic", "--image-size", "32", "--batch", "64", "--max-epochs", "1",
                       "--kernels", "reference", "--out", "one-epoch", "--quiet")
    assert trained.returncode == 0, trained.stderr
    metrics = [json.loads(line) for line in (elsewhere / "one-epoch" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1]
    assert json.loads((elsewhere / "one-epoch" / "status.json").read_text())["status"] == "finished"


def project_version():
    """The version as the source declares it (read as text, not imported)."""
    text = (ROOT / "batchlab" / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)
