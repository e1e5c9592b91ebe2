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
# ATARI_DQN_MAKE tells a run (or a report) that the Makefile started it, so the commands it
# prints are `make resume ...`, `make eval ...`; it holds the make line, which a stopped sweep
# prints as the command that continues it (sweep and atari100k spell theirs out below).
MAKE_LINE = make $(MAKECMDGOALS)
RUN = ATARI_DQN_MAKE='$(subst ','\'',$(MAKE_LINE))' $(PY) -m atari_dqn
ARGS_LINE = $(if $(ARGS), ARGS="$(ARGS)")

.PHONY: install train resume eval sweep atari100k report bench bench-gpu gpu-check test test-slow lint \
	format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,bench]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(RUN) train --game "$(GAME)" --config $(CONFIG) $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(ARGS)

# Continue a stopped run from its checkpoint: make resume RUN_DIR=runs/Breakout-20261125-120000
resume: $(STAMP)
	$(if $(RUN_DIR),,$(error make resume needs RUN_DIR=<the run directory>, e.g. RUN_DIR=runs/Breakout-20261125-120000))
	$(RUN) train --resume $(RUN_DIR) $(ARGS)

# GAMES and SEEDS are space-separated: make sweep GAMES="Breakout Pong" SEEDS="0 1 2"
GAMES ?= $(GAME)
SEEDS ?= 0
empty :=
comma := ,
space := $(empty) $(empty)
sweep: MAKE_LINE = make sweep GAMES="$(GAMES)" SEEDS="$(SEEDS)" CONFIG=$(CONFIG)$(ARGS_LINE)
sweep: $(STAMP)
	$(RUN) sweep --games $(subst $(space),$(comma),$(strip $(GAMES))) \
	  --seeds $(subst $(space),$(comma),$(strip $(SEEDS))) --config $(CONFIG) $(ARGS)

# The Atari 100k benchmark through the sweep, resumable by running it again:
#   make atari100k GAMES="Pong Boxing" SEEDS="0 1" ALGO=drq_eps   (or ALGO=der)
# Without GAMES, all 26 games of the benchmark; runs go to runs/atari100k-$(ALGO)/.
ALGO ?= drq_eps
ALGOS := $(basename $(notdir $(wildcard configs/atari100k/*.yaml)))
ifneq ($(filter atari100k,$(MAKECMDGOALS)),)
ifeq ($(filter $(ALGO),$(ALGOS)),)
$(error unknown ALGO=$(ALGO): use one of $(ALGOS) (configs/atari100k/*.yaml))
endif
endif
atari100k: MAKE_LINE = make atari100k ALGO=$(ALGO)$(if $(filter file,$(origin GAMES)),, \
  GAMES="$(GAMES)") SEEDS="$(SEEDS)"$(ARGS_LINE)
atari100k: $(STAMP)
	$(RUN) sweep --games $(if $(filter file,$(origin GAMES)),atari100k,$(subst $(space),$(comma),$(strip $(GAMES)))) \
	  --seeds $(subst $(space),$(comma),$(strip $(SEEDS))) --config configs/atari100k/$(ALGO).yaml \
	  --out runs/atari100k-$(ALGO) $(ARGS)

eval: $(STAMP)
	$(if $(RUN_DIR),,$(error make eval needs RUN_DIR=<the run directory>))
	$(RUN) eval --run-dir $(RUN_DIR) $(ARGS)

report: $(STAMP)
	$(RUN) report $(RUNS) $(ARGS)

bench: $(STAMP)
	$(PY) -m atari_dqn bench all $(ARGS)

# On a GPU machine: gpu-check's benchmark stages alone (the CUDA tests, bench learner and
# bench e2e --quick), each under a time limit; records in $RESULTS, the GPU named.
bench-gpu:
	PYTHON=$(PYTHON) STAGES="cuda learner e2e" benchmarks/gpu_check.sh $(ARGS)

# On a GPU machine lent for ~10-15 minutes (python3 with CUDA torch, numba, OpenCV; the rest
# as wheels): the suite, bench learner and e2e, and a real run of configs/nature.yaml with
# 16 envs for 6 minutes, evaluated and summarised; see benchmarks/gpu_check.sh.
# `make gpu-check ARGS=--dry-run` runs every stage at CPU size.
gpu-check:
	PYTHON=$(PYTHON) benchmarks/gpu_check.sh $(ARGS)

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
