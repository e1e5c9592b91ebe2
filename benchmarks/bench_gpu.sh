#!/usr/bin/env bash
# `make bench-gpu`: what only a GPU can show, in one command and under 8 minutes, on a
# machine whose Python already has a CUDA build of torch, numba, OpenCV, gymnasium, ale-py,
# pytest and stable-baselines3 (the peer). Runs the CUDA tests, then `bench learner` and
# `bench e2e --quick`; their records land in benchmarks/results/, stamped with the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'bench-gpu: torch sees no CUDA device')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
"$PY" -m pytest -q -m cuda tests
"$PY" -m atari_dqn bench learner --quick
"$PY" -m atari_dqn bench e2e --quick
