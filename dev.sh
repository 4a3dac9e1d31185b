#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs requirements.txt (MPI included, from
# PyPI's mpich wheel), then runs what was asked.
#   ./dev.sh run [run.py args]   the main job: train the study's net (built-in synthetic set by default)
#   ./dev.sh test [pytest args]  the whole test suite
#   ./dev.sh python ARGS         any command inside the environment
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $VENV (requirements.txt changed or first run)" >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
cmd=${1:-run}
shift || true
case "$cmd" in
  # a new folder per run (an --out in the arguments wins): an earlier run is never replaced
  run)  exec python run.py --data synthetic --max-epochs 10 --patience 5 \
             --out "runs/first-run-$(date +%Y%m%d-%H%M%S)" "$@" ;;
  test) exec python -m pytest -q "$@" ;;
  python) exec python "$@" ;;
  *) echo "usage: ./dev.sh run|test|python [args]" >&2; exit 2 ;;
esac
