# medlearn: `make demo` and `make test` each work on a fresh clone (they run `setup` first).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY ?= PASSIVE
export MEDLEARN_DATA ?= $(abspath ../shared/data)

.PHONY: setup demo test bench lint clean

setup: $(STAMP)
	@# the browser test (tests/serve/test_browser.py) drives Debian's chromium through playwright
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1)) || \
	    echo "could not install chromium with apt-get: the browser test will fail until it is installed"; \
	  else \
	    echo "the browser test needs Chromium at /usr/bin/chromium: run 'sudo apt-get install chromium' (or make setup as root)"; \
	  fi; \
	fi

# torch first, alone and pinned: its CPU wheel is on this machine's disk; any other spec pulls CUDA builds.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: setup
	$(BIN)/medlearn demo -o runs/demo --force

test: setup
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
