# Two entry points for a fresh machine (see README, Quickstart):
#   make ask    set up, index the bundled documents, answer a question
#   make test   set up with the test extras, run the whole test suite
# pip, not uv/poetry: only pip sees the CPU torch wheel this project pins (see README).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
QUESTION ?= Qui domine la production de puces mémoire ?

.PHONY: setup setup-test ask test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

setup-test: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'

ask: setup
	$(BIN)/tpdqa ask "$(QUESTION)"

test: setup-test
	$(BIN)/python -m pytest

clean:
	rm -rf index eval-out test-artifacts
