# Set-up and everyday commands. Every target works on a fresh machine:
# it creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo needs the package only; the tests and linters add the dev extra.
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev
# Test workers: two per core, at most 4 (each starts its own test host,
# PostgreSQL cluster, Slurm and Chromium). Most tests wait on other processes
# (runners, sshd, dockerd, Slurm), so two per core keep the cores busy: on 2
# cores the suite takes about 8 minutes instead of 11.
# make test TEST_WORKERS=1 runs them in turn.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$((2 * n < 4 ? 2 * n : 4)))
# loadgroup: the tests of a module marked xdist_group run on one worker, in order
# (tests/test_slurm_target.py: a time limit checked every 30 s, waited for across tests).
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15

.PHONY: demo test coverage system-deps lint format clean

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(DEMO_STAMP)

$(DEV_STAMP): $(DEMO_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

# The demo sweep; it ends by saying where the report is and how to browse it.
demo: $(DEMO_STAMP)
	$(BIN)/python scripts/demo.py $(BIN)

# The SSH, Docker and PostgreSQL tests run against a real sshd, dockerd and
# PostgreSQL server: install them when they are missing.
system-deps:
	scripts/install-system-deps

test: $(DEV_STAMP) system-deps
	$(PYTEST)

# The suite with line coverage of cosmos_workflow (also in the CLI
# subprocesses); lists the lines each module misses.
coverage: $(DEV_STAMP) system-deps
	$(PYTEST) --cov=cosmos_workflow --cov-report=term-missing

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .work outputs .coverage .coverage.*
