"""``solray up`` / ``solray down`` with a cluster.yaml and the local provider (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import psutil
import pytest
import yaml
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray.autoscaler import ClusterConfigError, load_cluster_config
from solray.autoscaler._internal.launcher import cluster_down

GOOD = {
    "cluster_name": "t11",
    "provider": {"type": "local"},
    "max_workers": 1,
    "idle_timeout_s": 1,
    "available_node_types": {
        "head": {"resources": {"CPU": 1, "object_store_memory": 64 * 2**20}, "max_workers": 0},
        "w": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 1},
    },
    "head_node_type": "head",
}


def test_cluster_yaml_keys_and_errors():
    _raw, config = load_cluster_config({**GOOD, "idle_timeout_s": None, "idle_timeout_minutes": 0.5})
    assert config.idle_timeout_s == 30 and list(config.node_types) == ["w"] and config.max_workers == 1
    bad_types = {"head": {"resources": {"CPU": 1}}, "w": {"resources": {"CPU": 1}, "min_workers": 3, "max_workers": 1}}
    for bad, words in [
        ({**GOOD, "provider": {"type": "aws"}}, "provider.type must be one of"),
        ({**GOOD, "head_node_type": "nope"}, "head_node_type 'nope'"),
        ({**GOOD, "upscaling_speed": -1}, "upscaling_speed"),
        ({**GOOD, "available_node_types": bad_types}, "min_workers <= max_workers"),
        ({**GOOD, "available_node_types": {"head": {"resources": "CPU=1"}}}, "resources must be a mapping"),
    ]:
        with pytest.raises(ClusterConfigError, match=words):
            load_cluster_config(bad)


@ray.remote(num_cpus=1)
def hold(address):
    arrive_and_wait(address)
    return ray.get_runtime_context().get_node_id()


def test_up_scales_with_load_and_down_stops_everything(tmp_path):
    root = tempfile.mkdtemp(prefix="solray-test-up-")
    env = dict(os.environ, SOLRAY_TMPDIR=root, SOLRAY_CONFIG_DIR=os.path.join(root, "config"),
               SOLRAY_NODE_DEATH_TIMEOUT_S="1.0", SOLRAY_AUTOSCALER_INTERVAL_S="0.2")
    config = tmp_path / "cluster.yaml"
    # Idle workers stay for a minute: here `down` must stop the worker the autoscaler added.
    config.write_text(yaml.safe_dump({**GOOD, "idle_timeout_s": 60}))
    solray_cli = [sys.executable, "-m", "solray.cli.main"]
    out = subprocess.run(solray_cli + ["up", str(config), "-y"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Cluster 't11' is up" in out.stdout
    address = out.stdout.split("head at ")[1].split(",")[0]
    with open(os.path.join(root, "autoscaler-t11.json")) as f:
        head_pid = json.load(f)["head_pid"]
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        ray.init(address=address)
        with Gate() as gate:
            refs = [hold.remote(gate.address) for _ in range(2)]
            gate.wait_arrivals(2, timeout=60)  # needs the worker the autoscaler adds
        assert len(set(ray.get(refs, timeout=30))) == 2
        ray.shutdown()
        procs = [p for p in psutil.process_iter(["cmdline"]) if str(config) in " ".join(p.info["cmdline"] or [])]
        assert len(procs) == 1  # the autoscaler process
    finally:
        if ray.is_initialized():
            ray.shutdown()
        down = subprocess.run(solray_cli + ["down", str(config), "-y"], env=env, capture_output=True, text=True, timeout=60)
        os.environ.clear()
        os.environ.update(saved)
    assert down.returncode == 0, down.stderr
    assert "Cluster 't11' is down" in down.stdout
    assert "1 worker node(s)" in down.stdout  # the worker it added, stopped by `down`
    for pid in (procs[0].pid, head_pid):
        wait_for(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                 10, f"process {pid} to exit")
    lines = []
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        cluster_down(str(config), lines.append)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert "is not up" in lines[0]
