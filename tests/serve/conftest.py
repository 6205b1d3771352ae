"""Fixtures for solray.serve tests: one local cluster per module, Serve started on it, and
no application outliving its test."""

from __future__ import annotations

import os

import pytest

import solray
from solray import serve

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def serve_cluster():
    """A local cluster (8 logical CPUs on any machine) with Serve's proxy on port 8000."""
    ctx = solray.init(num_cpus=8)
    serve.start(http_options={"port": 8000, "max_request_body_bytes": 1 << 20, "body_timeout_s": 1.0})
    yield ctx
    serve.shutdown()
    solray.shutdown()


@pytest.fixture
def serve_instance(serve_cluster):
    yield serve_cluster
    for name in list(serve.status().applications):
        serve.delete(name)
