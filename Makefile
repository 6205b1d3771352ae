# The two set-up commands of a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: demo test lint bench bench-ray clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) install -r requirements-test.txt
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(PY) examples/core_demo.py

test: $(TEST_STAMP)
	$(PY) -m pytest -q -x --durations=15 tests

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check solray tests benchmarks examples

bench: $(TEST_STAMP)
	$(PY) benchmarks/compare.py

clean:
	rm -rf $(VENV) build *.egg-info
