#!/usr/bin/env bash
# `make bench-gpu`: what only a GPU can show, in one command and under 8 minutes, on a
# machine whose Python already has a CUDA build of torch, numba, OpenCV, gymnasium, ale-py,
# pytest and stable-baselines3 (the peer). Runs the CUDA tests, then `bench learner --quick`
# and `bench e2e --quick`, each under its own time limit; their records land in $RESULTS
# (default benchmarks/results/), stamped with the GPU. A stage that fails does not stop the
# ones after it: every figure that can be measured is, and the exit status says if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${RESULTS:-benchmarks/results}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench-gpu: torch sees no CUDA device')" || exit 2
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
failed=()
stage() {  # stage NAME SECONDS COMMAND...
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout --signal=INT --kill-after=15 "$limit" "$@" || failed+=("$name (exit $?)")
    echo "== $name took $((SECONDS - start))s"
}
stage "CUDA tests" 180 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
stage "bench learner" 120 "$PY" -m atari_dqn bench learner --quick --out "$RESULTS"
stage "bench e2e" 300 "$PY" -m atari_dqn bench e2e --quick --out "$RESULTS"
if ((${#failed[@]})); then
    printf 'bench-gpu: failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
