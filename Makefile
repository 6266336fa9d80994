# The two set-up commands for a fresh machine:
#   make demo   create .venv (locked versions) if missing, then `dvc repro` the embedded default
#   make test   create .venv if missing, then run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip on this kind of machine warns once per package about absent local index folders: filter that noise.
QUIET_PIP := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.agentune-installed
TEST_STAMP := $(VENV)/.agentune-test-installed
LLAMA_STAMP := $(VENV)/.agentune-llama-cpp-installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test install llama-cpp gpu-wheels lint lock clean-venv

install: $(STAMP)

# Reinstall only when the lock or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" $(QUIET_PIP)
	$(BIN)/python -m pip install -q --no-deps -r requirements.lock $(QUIET_PIP)  # complete and tested: no resolver (xtuner pins an older bitsandbytes)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . $(QUIET_PIP)
	$(BIN)/python -m agentune.core.envcheck
	@touch $@

demo: $(STAMP)
	@test -d .git || { echo "make demo: run it inside the git clone (DVC needs the repo)"; exit 2; }
	@start=$$(date +%s); dvc repro && \
	  $(BIN)/python scripts/demo_summary.py --seconds $$(( $$(date +%s) - start ))

# Test-only clients (openai, AutoGen, lagent): pinned, --no-deps, never part of the runtime lock.
# lagent goes to its own folder (it needs griffe<1; the runtime has griffe 2): see requirements-test-lagent.txt.
$(TEST_STAMP): $(STAMP) requirements-test.txt requirements-test-lagent.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-test.txt $(QUIET_PIP)
	rm -rf $(VENV)/lagent-client
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/lagent-client -r requirements-test-lagent.txt $(QUIET_PIP)
	@touch $@

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The llama.cpp runtime, an extra (compiled from source with CMake, ~6 min on 2 cores): decoding GGUF
# files in `evaluate` (models: gguf), `agentune serve --engine llama.cpp`, and the q4_k_m quantizer.
llama-cpp: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP) requirements-llama-cpp.txt
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements-llama-cpp.txt $(QUIET_PIP)
	@touch $@

# The wheels benchmarks/gpu_e2e.py carries to a lent GPU machine (Python 3.12, no package index):
# xtuner, mmengine, DeepSpeed without ops, bitsandbytes for CUDA 13.0, ... at the locked versions.
gpu-wheels: $(STAMP)
	$(BIN)/python scripts/gpu_wheels.py

lint: $(STAMP)
	$(BIN)/ruff check src flows tests benchmarks scripts examples
	$(BIN)/ruff format --check src flows tests benchmarks scripts examples

# Re-create requirements.lock from what is installed (after a tested upgrade).
lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -vE '^(agentune|pip)==' \
	  | grep -viE "^($$(grep -vE '^\s*(#|$$)' requirements-test.txt | cut -d= -f1 | paste -sd'|' -))==" > requirements.lock

clean-venv:
	rm -rf $(VENV)
