# Every target creates .venv and installs into it on first use.
# TORCH_SPEC pins the CPU wheel found on this project's machines; on a GPU machine use e.g.
#   make install TORCH_SPEC=torch
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
GAME ?= Breakout
CONFIG ?= configs/nature.yaml
RUN_DIR ?=
ARGS ?=
RUNS ?= runs/*

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train eval sweep report bench bench-gpu test test-slow lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,bench]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) -m atari_dqn train --game $(GAME) --config $(CONFIG) $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(ARGS)

# GAMES and SEEDS are space-separated: make sweep GAMES="Breakout Pong" SEEDS="0 1 2"
GAMES ?= $(GAME)
SEEDS ?= 0
empty :=
comma := ,
space := $(empty) $(empty)
sweep: $(STAMP)
	$(PY) -m atari_dqn sweep --games $(subst $(space),$(comma),$(strip $(GAMES))) \
	  --seeds $(subst $(space),$(comma),$(strip $(SEEDS))) --config $(CONFIG) $(ARGS)

eval: $(STAMP)
	$(PY) -m atari_dqn eval --run-dir $(RUN_DIR) $(ARGS)

report: $(STAMP)
	$(PY) -m atari_dqn report $(RUNS) $(ARGS)

bench: $(STAMP)
	$(PY) -m atari_dqn bench all $(ARGS)

# On a GPU machine whose python3 already has CUDA torch, numba, OpenCV, gymnasium, ale-py,
# pytest and stable-baselines3: the CUDA tests, bench learner and bench e2e --quick, each
# under a time limit; records in $RESULTS (default benchmarks/results), the GPU named.
bench-gpu:
	PYTHON=$(PYTHON) benchmarks/bench_gpu.sh

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
