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
