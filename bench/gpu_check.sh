#!/usr/bin/env bash
# The GPU checks, unattended, for a machine with a CUDA GPU and no network. It uses that machine's
# own Python (PYTHON, else python3), which must already hold CuPy, numba with numba-cuda, SciPy,
# Pillow, matplotlib, tqdm and pytest; PyTorch is optional (it adds the PyTorch CUDA timings).
#
#   OUT=/some/empty/folder bench/gpu_check.sh            # run everything (under 8 minutes)
#   OUT=/tmp/x bench/gpu_check.sh --dry-run              # print the plan, run and write nothing
#
# Writes 8 files under $OUT: env.txt, kernel_tests.txt (the tests/test_cuda_*.py kernel and
# whole-net tests on CuPy arrays, no simulator), model_check.json (bench/gpu_model_check.py: float64
# net vs the CPU reference and central differences), train.log and train_metrics.jsonl (2 epochs on
# the synthetic set with --device cuda), step_time_cuda.json/.md (bench/step_time.py --device cuda,
# batch 32-256, plus PyTorch CUDA when installed), summary.txt (each step's exit code and seconds).
# Every step has its own time limit; a failing step is recorded and the next one still runs.
# Exit code: 0 all steps passed, 1 a step failed, 2 a usage error.
set -u

usage_error() { echo "gpu_check.sh: $1" >&2; exit 2; }

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) usage_error "unknown argument '$arg' (use --dry-run or --help)" ;;
    esac
done
[ -n "${OUT:-}" ] || usage_error "set OUT to the folder the results go to"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || usage_error "no Python '$PY' (set PYTHON)"
cd "$(dirname "$0")/.." || usage_error "cannot enter the repository root"
for needed in run.py bench/step_time.py bench/gpu_model_check.py tests/test_cuda_kernels.py \
              tests/test_cuda_model.py; do
    [ -f "$needed" ] || usage_error "missing $needed: run from a full checkout"
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export NUMBA_ENABLE_CUDASIM=0 BATCHLAB_CUDA_TESTS=gpu PYTHONDONTWRITEBYTECODE=1

STEPS=(
    "env|20|{ nvidia-smi; \"\$PY\" -c 'import sys, numpy, numba, cupy; from numba import cuda; print(sys.version); print(\"numpy\", numpy.__version__, \"numba\", numba.__version__, \"numba.cuda\", cuda.implementation, \"cupy\", cupy.__version__); cuda.detect()'; } > \"\$OUT/env.txt\" 2>&1"
    "kernel_tests|120|\"\$PY\" -m pytest -q -p no:cacheprovider tests/test_cuda_kernels.py tests/test_cuda_model.py > \"\$OUT/kernel_tests.txt\" 2>&1"
    "model_check|50|\"\$PY\" bench/gpu_model_check.py --out \"\$OUT/model_check.json\" >> \"\$OUT/summary.txt\" 2>&1"
    "train|100|\"\$PY\" run.py --device cuda --max-epochs 2 --batch 32 --lr 0.05 --quiet --out \"\$WORK/run\" --cache-dir \"\$WORK/cache\" > \"\$OUT/train.log\" 2>&1; rc=\$?; cp \"\$WORK/run/metrics.jsonl\" \"\$OUT/train_metrics.jsonl\" 2>/dev/null; exit \$rc"
    "step_time|170|\"\$PY\" bench/step_time.py --device cuda --kernels cuda reference --passes train --torch --batches 32 64 128 256 --repeats 10 --name \"\$WORK/step_time_cuda\" >> \"\$OUT/summary.txt\" 2>&1; rc=\$?; cp \"\$WORK\"/step_time_cuda.json \"\$WORK\"/step_time_cuda.md \"\$OUT/\" 2>/dev/null; exit \$rc"
)

if [ "$DRY_RUN" = 1 ]; then
    echo "gpu_check.sh dry run: python $PY, results to $OUT; would run, each under its time limit:"
    for step in "${STEPS[@]}"; do
        IFS='|' read -r name limit command <<< "$step"
        echo "  $name (${limit} s): $command"
    done
    exit 0
fi

mkdir -p "$OUT" || usage_error "cannot create OUT=$OUT"
export OUT PY WORK
failed=0
for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit command <<< "$step"
    start=$SECONDS
    timeout "$limit" bash -c "$command"
    rc=$?
    echo "step $name: exit $rc in $((SECONDS - start)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
    [ "$rc" = 0 ] || failed=1
done
exit "$failed"
