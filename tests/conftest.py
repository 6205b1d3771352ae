"""Shared fixtures: real local clusters started and stopped around tests."""

from __future__ import annotations

import os
import tempfile

import pytest

import solray

# Heads started by tests store their tokens in a config folder of the test run, not the
# user's ~/.config/solray (children inherit it; tests' clean environments keep XDG_*).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="solray-test-config-")
# Hundreds of local clusters start here: without a dashboard each unless a test asks for one.
os.environ.setdefault("SOLRAY_INCLUDE_DASHBOARD", "0")
# Two cores: torch/BLAS in tests and their workers must not each start a thread per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def ray_start():
    """A fresh 2-CPU local cluster for one test."""
    ctx = solray.init(num_cpus=2)
    yield ctx
    solray.shutdown()


@pytest.fixture(scope="module")
def ray_2_cpus():
    """One 2-CPU cluster per module: the size of this machine (Train's and Tune's tests:
    seed 002's two training workers must fit with no CPU left for a coordinator)."""
    ctx = solray.init(num_cpus=2)
    yield ctx
    solray.shutdown()


@pytest.fixture
def storage(tmp_path):
    """A fresh results folder (RunConfig.storage_path) per test."""
    return str(tmp_path / "results")


@pytest.fixture(scope="module")
def ray_shared():
    """One 4-CPU local cluster shared by a module's tests (faster; tests must not kill it)."""
    ctx = solray.init(num_cpus=4, resources={"custom": 2})
    yield ctx
    solray.shutdown()


@pytest.fixture
def ray_start_custom(request):
    """A local cluster with ``init`` arguments from ``@pytest.mark.parametrize(..., indirect=True)``."""
    ctx = solray.init(**getattr(request, "param", {}))
    yield ctx
    solray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def _no_cluster_outlives_its_module():
    """A module that leaves a driver connected (a failed fixture, a test that called init
    itself) must not make every later module fail with "init twice"."""
    yield
    if solray.is_initialized():
        solray.shutdown()
