"""Fixtures for solray.data tests: one 2-CPU cluster per module, a fresh DataContext per test."""

from __future__ import annotations

import pytest

import solray
from solray.data import DataContext


@pytest.fixture(scope="module")
def ray_data():
    """A 2-CPU local cluster shared by one module's tests."""
    ctx = solray.init(num_cpus=2)
    yield ctx
    solray.shutdown()


@pytest.fixture(autouse=True)
def fresh_data_context():
    DataContext._set_current(DataContext())
    yield
    DataContext._set_current(DataContext())


@pytest.fixture
def counter(ray_data):
    """An actor counting calls by key, for tests that count remote work."""

    @solray.remote(num_cpus=0)
    class Counter:
        def __init__(self):
            self.counts = {}

        def inc(self, key="n", by=1):
            self.counts[key] = self.counts.get(key, 0) + by
            return self.counts[key]

        def get(self, key="n"):
            return self.counts.get(key, 0)

        def all(self):
            return dict(self.counts)

    c = Counter.remote()
    yield c
    solray.kill(c)
