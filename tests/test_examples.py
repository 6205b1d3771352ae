"""Every program under examples/ runs to completion and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def test_core_demo_runs_word_count_and_pi():
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "core_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "word count: 8000 words" in out
    assert "('the', 1250)" in out
    pi = float(out.split("Monte Carlo pi ~= ")[1].split()[0])
    assert abs(pi - 3.1416) < 0.02
    assert "progress actor saw 100% of the samples" in out


def test_ai_libs_demo_runs_seed_002_lesson_1_end_to_end():
    """Data -> Train (XGBoost) -> Tune -> offline batch prediction -> Serve over HTTP, with
    the dashboard on, as `make demo` runs it."""
    env = {k: v for k, v in os.environ.items() if k != "SOLRAY_INCLUDE_DASHBOARD"}
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "ai_libs_demo.py")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "dashboard http://127.0.0.1:" in out
    assert "Data: 20000 trips read, 14000 to train, 6000 to validate" in out
    logloss = float(out.split("Train: valid-logloss ")[1].split(",")[0])
    assert 0.3 < logloss < 0.69  # better than a coin, on data with a learnable signal
    assert "Tune: best max_depth=" in out and "of 3 trials" in out
    assert "Offline prediction (2 actors): first probabilities [" in out
    assert "Online prediction over HTTP (Serve): {'predictions': [" in out
