# The two commands of the README, and the linter CI runs before the tests.
# All bootstrap .venv once: the stamp is rebuilt only when setup.cfg or
# pyproject.toml change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tfxfer-installed

.PHONY: demo test test-fast lint clean

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/tfxfer demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The tests not marked slow: a few minutes, for the edit-test loop. CI runs `make test`.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
