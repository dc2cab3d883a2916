# Bright Kitchen — the README's commands. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: help demo test lint schema clean
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# One stamp per set of extras, redone when pyproject.toml changes.
$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[edge,dashboard]'
	@touch $@

$(VENV)/.stamp-all: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[edge,dashboard,train,dev]'
	@touch $@ $(VENV)/.stamp-demo

demo: $(VENV)/.stamp-demo  ## broker + dashboard + edge agent on the bundled sample clip
	$(BIN)/brightkitchen demo run

test: $(VENV)/.stamp-all  ## the whole test suite (installs every extra first)
	$(BIN)/python -m pytest

lint: $(VENV)/.stamp-all  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schema: $(VENV)/.stamp-demo  ## regenerate docs/mqtt-schema.json from the contract
	$(BIN)/brightkitchen schema --out docs/mqtt-schema.json

clean:  ## remove the venv, caches and demo data
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-data test-artifacts
