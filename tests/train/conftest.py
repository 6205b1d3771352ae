"""Fixtures for solray.train tests: one 2-CPU cluster per module (the size of this
machine: seed 002's two workers must fit on it with no CPU left for a coordinator)."""

from __future__ import annotations

import os

import pytest

import solray

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def ray_train():
    ctx = solray.init(num_cpus=2)
    yield ctx
    solray.shutdown()


@pytest.fixture
def storage(tmp_path):
    return str(tmp_path / "results")
