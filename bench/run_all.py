"""Rerun every benchmark whose results are committed, one after another, into this CPU's folder.

    python bench/run_all.py [--into DIR] [--skip NAME ...] [--dry-run]

The files directly in bench/results/ come from an AMD EPYC (Zen 4, numba's LLVM target znver4),
those in bench/results/emeraldrapids/ from an Intel Xeon (Emerald Rapids), and the same code reaches
different fractions of sgemm on the two (README, Performance). By default the results go to the
folder of this machine's LLVM target: bench/results/ on znver4, bench/results/<target>/ on any
other, so a rerun on either kind of machine replaces that kind's files and nothing else. Each step
is one of the scripts with the arguments its committed files were made with (STEPS); the paper
profile's projection is remade from the two epoch files the run just wrote. PyTorch's rows are
added when torch is installed (an optional extra), and the epoch benchmarks need the PetImages photos
(../shared/data/PetImages; they are skipped, and said so, where absent).

About 13 minutes on the Xeon. It prints each step as it starts with the time so far and an
estimate of what is left, and a step that fails is reported without stopping the others (exit code
1 at the end). Keep the machine otherwise quiet while it runs: every figure is a ratio or a rate
measured in that moment.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from parallel.threads import THREAD_VARIABLES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
HOME_TARGET = "znver4"  # the CPU whose files sit directly in bench/results/
PETIMAGES = ROOT.parent / "shared" / "data" / "PetImages"
ONE_THREAD = {name: "1" for name in THREAD_VARIABLES}

# (name, the script and its arguments, extra environment, seconds it took on the Xeon, needs photos)
STEPS = [
    ("step_time", ["bench/step_time.py", "TORCH"], {}, 260, False),
    ("step_time_1thread", ["bench/step_time.py", "--threads", "1"], {}, 65, False),
    ("epoch_time", ["bench/epoch_time.py", "--batches", "32", "64", "128", "256"], {}, 165, True),
    ("epoch_time_study_layout", ["bench/epoch_time.py", "--processes", "2", "--threads", "1", "--batches", "32",
                                 "64", "128", "256", "--epochs", "2"], {}, 135, True),
    ("profile_step", ["bench/profile_step.py"], {}, 60, False),
    ("study_throughput", ["bench/study_throughput.py"], {}, 40, False),
    ("block_passes", ["bench/block_passes.py"], {}, 25, False),
    ("kernel_peak", ["bench/kernel_peak.py"], ONE_THREAD, 25, False),
    ("tile_peak", ["bench/tile_peak.py"], {}, 15, False),
    ("tile_mix", ["bench/tile_mix.py"], {}, 10, False),
]


class RunAllError(Exception):
    """A user mistake (an unknown step to skip), reported in one line."""


def default_folder(llvm_cpu):
    """Where this machine's results go: bench/results/ for the home CPU, else its own subfolder."""
    return RESULTS if llvm_cpu == HOME_TARGET else RESULTS / llvm_cpu


def plan(folder, torch_installed, photos_present, skip=()):
    """[(name, argv, env, typical seconds)] of the steps to run, and [(name, why)] of those left out;
    every result name is `folder` relative to bench/results, as the scripts' --name takes it."""
    unknown = set(skip) - {name for name, *_ in STEPS}
    if unknown:
        raise RunAllError(f"no step named {', '.join(sorted(unknown))} (steps: {', '.join(n for n, *_ in STEPS)})")
    prefix = Path(folder).resolve().relative_to(RESULTS.resolve())
    steps, left_out = [], []
    for name, args, env, seconds, needs_photos in STEPS:
        if name in skip:
            left_out.append((name, "--skip"))
            continue
        if needs_photos and not photos_present:
            left_out.append((name, f"no photos at {PETIMAGES}"))
            continue
        args = [a for a in args if a != "TORCH"] + (["--torch"] if "TORCH" in args and torch_installed else [])
        steps.append((name, [sys.executable, *args, "--name", str(prefix / name)], env, seconds))
    return steps, left_out


def remaining(typical_left, elapsed, typical_done):
    """Seconds still to go: the typical seconds of the steps left, scaled by how this machine has
    compared with the typical ones so far (not at all before the first step has run)."""
    return typical_left * (elapsed / typical_done if typical_done and elapsed else 1.0)


def run(steps, folder, dry_run):
    """Run the steps in turn, then the paper projection from the two epoch files when both were
    remade; return the names of the steps that failed."""
    failed, start, done = [], time.monotonic(), 0.0
    total = sum(seconds for *_, seconds in steps)
    for i, (name, argv, env, seconds) in enumerate(steps, start=1):
        elapsed = 0.0 if dry_run else time.monotonic() - start
        print(f"[{i}/{len(steps)}] {name}: {elapsed / 60:.1f} min so far, about "
              f"{remaining(total - done, elapsed, done) / 60:.0f} min left", flush=True)
        if dry_run:
            print("    " + " ".join(argv) + "".join(f"  ({k}={v})" for k, v in env.items()))
        elif subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL).returncode:
            failed.append(name)
            print(f"    {name} failed (rerun it alone to see why)", flush=True)
        done += seconds
    if not {"epoch_time", "epoch_time_study_layout"} <= {name for name, *_ in steps}:
        return failed
    projection = [sys.executable, "run.py", "study", "--profile", "paper", "--project",
                  str(Path(folder).resolve().relative_to(ROOT))]
    print("paper projection: " + " ".join(projection) + f" > {folder}/paper_projection.md", flush=True)
    if not dry_run:
        with open(Path(folder) / "paper_projection.md", "w") as out:
            if subprocess.run(projection, cwd=ROOT, stdout=out).returncode:
                failed.append("paper_projection")
    return failed


def main(argv=None):
    """Plan, say what is left out, run; exit 1 if a step failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, help="results folder under bench/results (default: this CPU's)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="steps to leave out")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run and write nothing")
    args = parser.parse_args(argv)
    import llvmlite.binding as llvm
    folder = args.into or default_folder(llvm.get_host_cpu_name())
    try:
        if not Path(folder).resolve().is_relative_to(RESULTS.resolve()):
            raise RunAllError(f"--into must be a folder under {RESULTS}, got {folder}")
        steps, left_out = plan(folder, importlib.util.find_spec("torch") is not None, PETIMAGES.is_dir(),
                               args.skip)
    except RunAllError as error:
        sys.exit(f"run_all: {error}")
    if not args.dry_run:
        Path(folder).mkdir(parents=True, exist_ok=True)
    print(f"into {folder}")
    for name, why in left_out:
        print(f"left out: {name} ({why})")
    failed = run(steps, folder, args.dry_run)
    print("dry run: nothing was run" if args.dry_run else "failed: " + ", ".join(failed) if failed
          else "all steps done")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
