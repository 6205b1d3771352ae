"""Fixtures for solray.rllib tests: one local cluster per module, torch on one thread."""

from __future__ import annotations

import os

import pytest
import torch

import solray

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rl_cluster():
    """A local cluster with logical room for several algorithms' runners and learners at once."""
    ctx = solray.init(num_cpus=8)
    yield ctx
    solray.shutdown()
