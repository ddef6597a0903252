# Two entry points (see README): `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0: on this CPU machine pip takes the local CPU wheel; on a GPU machine PyPI's CUDA
# build. For another CUDA version: make install TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_WORKERS ?= 2

.PHONY: install browser run test test-fast test-slow lint bench gpu-wheels clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/mmvae serve --host 127.0.0.1 --port 8000

# The web UI's browser tests (tests/ui) drive the system Chromium through its chromedriver;
# nothing is downloaded at test time. Installed from the distribution's packages when missing.
CHROMEDRIVER ?= /usr/bin/chromedriver
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive apt-get

browser:
	@if [ ! -x "$(CHROMEDRIVER)" ]; then \
	  echo "installing chromium and chromium-driver (apt-get)"; \
	  $(APT) install -y --no-install-recommends chromium chromium-driver \
	  || { $(APT) update && $(APT) install -y --no-install-recommends chromium chromium-driver; }; \
	fi

test: install browser lint test-fast test-slow

lint: install
	$(BIN)/ruff check .

test-fast: install
	$(BIN)/pytest -m "not slow" -n $(PYTEST_WORKERS) -q

test-slow: install
	$(BIN)/pytest -m slow -q

bench: install
	$(BIN)/python -m bench

# The wheels bench/gpu/run.sh installs on a GPU machine of the device tool (no index there).
gpu-wheels: install
	$(BIN)/python -m bench.gpu.wheels --dest .whl

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
