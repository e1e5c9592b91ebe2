#!/usr/bin/env bash
# `make gpu-check`: what a GPU machine lent for about 10-15 minutes can show, in one command,
# on a machine whose python3 already has a CUDA torch, numba and OpenCV (gymnasium, ale-py
# and stable-baselines3 travel as wheels; Ray cannot, so its tests skip there). Stages, each
# under its own time limit (seconds), in this order:
#   cuda     the CUDA tests                                               (CUDA_S, 90)
#   suite    the rest of the suite, under pytest-xdist when it is there    (SUITE_S, 120)
#   learner  bench learner --quick                                         (LEARNER_S, 60)
#   e2e      bench e2e --quick: ours and SB3's DQN at 1 and 16 envs each   (E2E_S, 240)
#   train    a real run of configs/nature.yaml (only loop.num_envs=16), for TRAIN_S seconds
#            (360) of training, then its stop checkpoint (7 GB of replay)  (TRAIN_S + 90)
#   eval     10 games of that run with the paper's protocol                (EVAL_S, 120)
#   record   the run summarised as a record (bench/realrun.py), nvidia-smi's peak included
# STAGES="train eval record" runs only those. Records land in $RESULTS (default
# benchmarks/results/), stamped with the GPU and the commit. A stage that fails does not stop
# the next; the exit status says whether any failed.
# --dry-run, on any machine: every stage at a size a CPU runs in a few minutes (the suite
# collected, not run; the benchmarks skipped; the smoke config trained to 2,500 steps),
# its records in a temporary folder: the script's own test.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY=0
[[ ${1:-} == --dry-run ]] && DRY=1
STAGES=${STAGES:-cuda suite learner e2e train eval record}
WORK=$(mktemp -d)
RUN_DIR=$WORK/gpu-check-Breakout
SMI_LOG=$WORK/nvidia-smi.csv
if ((DRY)); then
    RESULTS=${RESULTS:-$WORK/results}
    TRAIN_S=${TRAIN_S:-240}  # a limit only: the smoke run ends by itself, sooner
    CONFIG=configs/smoke.yaml
    OVERRIDES=(loop.total_steps=2500 logging.interval_steps=250 learner.compile=false)
    EVAL=(--episodes 2 eval.max_episode_frames=2000)
else
    RESULTS=${RESULTS:-benchmarks/results}
    TRAIN_S=${TRAIN_S:-360}
    CONFIG=configs/nature.yaml
    OVERRIDES=(loop.num_envs=16)
    EVAL=(--episodes 10)
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: torch sees no CUDA device (--dry-run runs it on a CPU)')" || exit 2
    "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
fi
echo "gpu-check: stages: $STAGES; records in $RESULTS; run in $RUN_DIR"
failed=()
stage() {  # stage NAME SECONDS COMMAND...: run it if asked for, under its limit
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    [[ " $STAGES " == *" $name "* ]] || return 0
    echo "== $name (limit ${limit}s)"
    timeout --signal=INT --kill-after=30 "$limit" "$@"
    local code=$?
    # A run stopped by its time budget checkpoints and exits 130, as after Ctrl-C.
    if ((code != 0)) && ! [[ $code == 130 && $name == train ]]; then
        failed+=("$name (exit $code)")
    fi
    echo "== $name took $((SECONDS - start))s"
}
if ((DRY)); then
    stage cuda 60 "$PY" -m pytest -qq --collect-only -m cuda -p no:cacheprovider tests
    stage suite 120 "$PY" -m pytest -qq --collect-only -p no:cacheprovider tests
else
    xdist=()
    "$PY" -c "import xdist" 2>/dev/null && xdist=(-n 8)
    stage cuda "${CUDA_S:-90}" "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
    stage suite "${SUITE_S:-120}" "$PY" -m pytest -q -m "not cuda" "${xdist[@]}" -p no:cacheprovider tests
    stage learner "${LEARNER_S:-60}" "$PY" -m atari_dqn bench learner --quick --out "$RESULTS"
    stage e2e "${E2E_S:-240}" "$PY" -m atari_dqn bench e2e --quick --out "$RESULTS"
    if [[ " $STAGES " == *" train "* ]] && command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$SMI_LOG" &
        smi=$!
    fi
fi
stage train $((TRAIN_S + 150)) timeout --signal=INT --preserve-status "$TRAIN_S" \
    "$PY" -m atari_dqn train --game Breakout --config "$CONFIG" --run-dir "$RUN_DIR" \
    "${OVERRIDES[@]}" logging.progress=false
[[ -n ${smi:-} ]] && kill "$smi"
stage eval "${EVAL_S:-120}" "$PY" -m atari_dqn eval --run-dir "$RUN_DIR" "${EVAL[@]}"
smi_arg=()
[[ -s $SMI_LOG ]] && smi_arg=(--nvidia-smi "$SMI_LOG")
stage record 60 "$PY" -m atari_dqn.bench.realrun "$RUN_DIR" "${smi_arg[@]}" --out "$RESULTS"
if ((${#failed[@]})); then
    printf 'gpu-check: failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "gpu-check: every stage ran; records in $RESULTS"
