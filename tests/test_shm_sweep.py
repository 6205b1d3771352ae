"""A node's shared-memory folder left behind by a SIGKILLed node is removed by the next node."""

from __future__ import annotations

import os
import subprocess
import sys

import solray


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_node_sweeps_folders_of_dead_nodes():
    stale = "/dev/shm/solray_test-sweep_dead"
    live = "/dev/shm/solray_test-sweep_live"
    for folder, pid in ((stale, _dead_pid()), (live, os.getpid())):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "owner.pid"), "w") as f:
            f.write(str(pid))
        with open(os.path.join(folder, "leftover"), "wb") as f:
            f.write(b"x" * 1024)
    try:
        solray.init(num_cpus=1)
        solray.shutdown()
        assert not os.path.exists(stale)
        assert os.path.exists(os.path.join(live, "leftover"))  # its owner (this test) lives
    finally:
        import shutil

        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)
