# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (lint + test suite);
# `make quickstart` is a one-minute smoke run.
# Each creates .venv and installs the package (with the Hub server and test tools) into it.
# TORCH_INSTALL picks the torch build (default below); override it for another one, e.g.
#   make test TORCH_INSTALL="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# Tests that need the larger real datasets read HF_RNN_TRANSFER_DATA and skip, saying so, without it.
PYTHON ?= python3
VENV ?= .venv
# Linux without an NVIDIA GPU gets PyTorch's CPU build (about 200 MB instead of several GB of CUDA libraries);
# a machine with `nvidia-smi`, and macOS (CPU + MPS), get the standard build.
ifeq ($(shell uname -s)$(shell command -v nvidia-smi 2>/dev/null),Linux)
TORCH_INSTALL ?= torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu
else
TORCH_INSTALL ?= torch==2.13.0
endif
BIN = $(VENV)/bin
# pytest-xdist workers: two keep both cores of a small machine busy while a test waits on a subprocess or a server
# (each worker gets its share of the cores for torch); `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: install demo quickstart test test-fast gpu-check lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch alone first (its own index), then the package, which brings torch's dependencies from PyPI
	$(BIN)/python -m pip install --quiet --no-deps $(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/hf-rnn-transfer demo --output_dir runs/demo --overwrite

quickstart: install
	$(BIN)/hf-rnn-transfer quickstart --output_dir runs/quickstart --overwrite

lint: install
	$(BIN)/ruff check hf_rnn_transfer tests benchmarks examples
	$(BIN)/ruff format --check hf_rnn_transfer tests benchmarks examples

test: lint
	$(PYTEST)

test-fast: install   # the development loop: everything but the tests marked slow
	$(PYTEST) -m "not slow"

gpu-check: install   # on a machine with CUDA/MPS: the device tests, then GPU throughput into docs/benchmarks.md
	$(BIN)/python -m pytest -q tests/test_devices.py
	cd benchmarks && ../$(BIN)/python gpu_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
