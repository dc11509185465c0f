# Two commands do all the set-up: `make quickstart` and `make test` (each bootstraps .venv).
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= /tmp/eva_quickstart
# pytest-xdist workers; each test file stays on one worker, so its module fixtures run once.
TEST_WORKERS ?= 2

.PHONY: quickstart test lint format lock bench clean

$(VENV)/.stamp: requirements.lock setup.py scripts/bootstrap.sh
	bash scripts/bootstrap.sh

quickstart: $(VENV)/.stamp
	$(PY) -m eva_jax.main --config=configs/quickstart.py --workdir=$(WORKDIR)

test: $(VENV)/.stamp lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Refresh the pinned versions after editing setup.py's dependencies. triton (torch's GPU kernel
# compiler, unused by the CPU-only transformers reference in the tests) is left out: loaded into a
# process that already runs XLA, its LLVM registers the same command-line options and aborts it.
lock:
	uv pip compile setup.py --extra test --python-version 3.12 --no-emit-package triton -o requirements.lock

clean:
	rm -rf $(VENV)
