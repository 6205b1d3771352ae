#!/usr/bin/env bash
# Creates /work/main/.venv-ray holding upstream Ray, so benchmarks/ can run the same
# workload on Ray and on solray side by side. Safe to re-run: it only installs what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAY_VENV:-$ROOT/.venv-ray}"
RAY_VERSION="${RAY_VERSION:-2.60.0}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi

# Ray and psutil (the memory probe) pinned by version check rather than reinstall, so a second
# run costs a second instead of a download.
have="$("$VENV/bin/python" -c 'import ray; print(ray.__version__)' 2>/dev/null || true)"
# ray[default]: Ray's dashboard (its Jobs API), which benchmarks/jobs.py drives.
# The libraries' benchmarks (train, tune, serve, rllib) need Ray's extras, torch (the CPU build
# the test constraints pin), XGBoost/LightGBM and gymnasium 1.2 (what Ray 2.60's RLlib imports).
if [ "$have" != "$RAY_VERSION" ] || ! "$VENV/bin/python" -c 'import numpy, psutil, aiohttp_cors, opencensus, torch, gymnasium, xgboost' 2>/dev/null; then
    "$VENV/bin/pip" install --disable-pip-version-check -q "ray[default,data,train,tune,serve,rllib]==$RAY_VERSION" \
        numpy psutil torch==2.13.0 "gymnasium==1.2.2" xgboost lightgbm
fi

"$VENV/bin/python" -c 'import ray, numpy, psutil; print("ray", ray.__version__, "numpy", numpy.__version__, "psutil", psutil.__version__)'
