# Two entry points for a newcomer: `make run` (dashboard) and `make test` (test suite).
# Both create or refresh .venv first.
VENV  ?= .venv
PY    := $(VENV)/bin/python
# Installed only when the venv has no torch yet; override e.g. TORCH=torch to take your platform's default build.
TORCH ?= torch==2.13.0

.PHONY: install install-dev run test sample-data bench gpu-check

# The dashboard needs only the base dependencies; the tests add the dev extras (pytest, playwright, ray, ...).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# ui.serve = streamlit run app.py, with the pages' imports done while the server starts (a faster first view).
# No file watcher: it would watch the whole checkout including .venv (inotify overflows, CPU).
run: install
	$(PY) -m ui.serve --server.address 127.0.0.1 --server.headless true --server.fileWatcherType none

test: install-dev
	bash .ci/ensure-chromium
	$(PY) -m pytest -q

sample-data: install
	$(PY) -m scripts.sample_data --out sample_data

# Every GPU path (SDP solver, one training per backend, Grad-TAG, Ray with a GPU share) on CUDA, <= 8 min on one GPU;
# writes bench/results/gpu_check.json + its BENCHMARKS.md section. Fails (exit 2) where there is no CUDA GPU;
# `$(PY) -m bench.gpu_check --dry-run` checks the script itself on the CPU.
gpu-check: install
	$(PY) -m bench.gpu_check --device $(or $(DEVICE),cuda)
