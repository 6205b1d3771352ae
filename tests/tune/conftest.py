"""Fixtures for solray.tune tests: one 2-CPU cluster per module, a fresh storage folder
per test."""

from __future__ import annotations

import os

import pytest

import solray

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def tune_cluster():
    ctx = solray.init(num_cpus=2)
    yield ctx
    solray.shutdown()


@pytest.fixture
def storage(tmp_path):
    return str(tmp_path / "results")
