"""The ``solray`` command: start a head, join nodes, connect drivers, status, stop.

Real processes: each test runs the CLI in subprocesses with ``SOLRAY_TMPDIR`` pointing at a
folder of its own, so its cluster files never meet another test's (or a user's) cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from cluster_helpers import DEATH_TIMEOUT_S, all_gone, node_id_here
from helpers import wait_for

import solray as ray

CLEARED = ("SOLRAY_TOKEN", "SOLRAY_AUTH_TOKEN", "RAY_ADDRESS", "SOLRAY_ADDRESS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def solray_cli(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "solray.cli.main", *args],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"solray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def cluster_processes(root: Path) -> list[int]:
    """Every process of the nodes recorded under ``root``: node processes and descendants."""
    pids = []
    for f in (root / "nodes").glob("*.json"):
        pid = json.loads(f.read_text())["pid"]
        try:
            p = psutil.Process(pid)
            pids += [pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return pids


def isolate(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Cluster files, sessions and stored tokens of this test in ``root`` only."""
    mp.setenv("SOLRAY_TMPDIR", str(root))
    mp.setenv("SOLRAY_CONFIG_DIR", str(root / "config"))
    mp.setenv("SOLRAY_NODE_DEATH_TIMEOUT_S", str(DEATH_TIMEOUT_S))
    for name in CLEARED:
        mp.delenv(name, raising=False)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """A head (1 CPU, "head_res") and a node on 127.0.0.2 (2 CPUs, "w": 2), both via the CLI."""
    root = tmp_path_factory.mktemp("cli-cluster")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, root)
        stopped = False
        try:
            out = solray_cli("start", "--head", f"--port={port}", "--num-cpus=1",
                             '--resources={"head_res": 1}', "--include-dashboard=false").stdout
            address = f"127.0.0.1:{port}"
            assert address in out
            out = solray_cli("start", f"--address={address}", "--node-ip-address=127.0.0.2", "--num-cpus=2",
                             '--resources={"w": 2}', f"--object-store-memory={128 << 20}",
                             "--labels=zone=west,tier=cpu").stdout
            assert "joined" in out
            yield {"root": root, "address": address, "port": port}
            if ray.is_initialized():
                ray.shutdown()
            pids = cluster_processes(root)
            assert "Stopped 2" in solray_cli("stop").stdout
            stopped = True
            wait_for(lambda: all_gone(pids), 15, "every node process and worker to exit")
        finally:
            if ray.is_initialized():
                ray.shutdown()
            if not stopped:  # whatever failed, no node outlives the tests
                solray_cli("stop", "--force", check=False)


@pytest.fixture
def in_cluster_env(cli_cluster, monkeypatch):
    isolate(monkeypatch, cli_cluster["root"])
    yield cli_cluster
    if ray.is_initialized():
        ray.shutdown()


@ray.remote
def where():
    return node_id_here()


@ray.remote(resources={"w": 1})
def on_w():
    return ray.get_runtime_context().get_node_id()


def test_status_lists_nodes_and_resources(in_cluster_env):
    out = solray_cli("status").stdout
    assert "Active: 2" in out and "Dead: 0" in out
    assert "127.0.0.1 (head)" in out and "127.0.0.2" in out
    assert "0/3 CPU" in out and "0/2 w" in out and "0/1 head_res" in out
    assert "(no resource demands)" in out
    # --address names the cluster explicitly.
    assert "Active: 2" in solray_cli("status", f"--address={in_cluster_env['address']}").stdout


def test_node_labels_from_the_command_line(in_cluster_env):
    from solray.util.scheduling_strategies import In, NodeLabelSchedulingStrategy

    ray.init(address="auto")
    labels = {n["NodeManagerAddress"]: n["Labels"] for n in ray.nodes()}
    assert labels["127.0.0.2"]["zone"] == "west" and labels["127.0.0.2"]["tier"] == "cpu"
    assert "zone" not in labels["127.0.0.1"]
    west = NodeLabelSchedulingStrategy({"zone": In("west")})
    assert ray.get(on_w.options(resources={}, scheduling_strategy=west).remote()) == ray.get(on_w.remote())


def test_cluster_files_are_private(in_cluster_env):
    root = in_cluster_env["root"]
    info = json.loads((root / "current_cluster.json").read_text())
    assert info["control_address"] == in_cluster_env["address"] and info["token"]
    assert (root / "current_cluster.json").stat().st_mode & 0o077 == 0  # holds the token


def test_init_auto_finds_the_cluster(in_cluster_env):
    ctx = ray.init(address="auto")
    assert ctx.address_info["address"] == in_cluster_env["address"]
    nodes = ray.nodes()
    assert len(nodes) == 2 and all(n["Alive"] for n in nodes)
    assert ray.cluster_resources()["CPU"] == 3
    w_node = next(n["NodeID"] for n in nodes if n["NodeManagerAddress"] == "127.0.0.2")
    assert ray.get([on_w.remote() for _ in range(4)]) == [w_node] * 4


@pytest.mark.parametrize("variable", ["RAY_ADDRESS", "SOLRAY_ADDRESS"])
def test_address_from_the_environment(in_cluster_env, monkeypatch, variable):
    monkeypatch.setenv(variable, in_cluster_env["address"])
    ray.init()
    assert ray.cluster_resources()["w"] == 2
    assert ray.get(on_w.remote())


def test_driver_with_only_address_and_token(in_cluster_env, monkeypatch, tmp_path):
    """A driver on a machine without the head's files: the address and SOLRAY_TOKEN suffice."""
    token = json.loads((in_cluster_env["root"] / "current_cluster.json").read_text())["token"]
    monkeypatch.setenv("SOLRAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("SOLRAY_CONFIG_DIR", str(tmp_path / "config"))
    with pytest.raises(ConnectionError, match="SOLRAY_TOKEN"):
        ray.init(address=in_cluster_env["address"])
    with pytest.raises(ConnectionError, match="address='auto'"):
        ray.init(address="auto")
    monkeypatch.setenv("SOLRAY_TOKEN", token)
    ray.init(address=in_cluster_env["address"])
    assert ray.get(on_w.remote())


def test_wrong_token_is_refused(in_cluster_env, monkeypatch):
    monkeypatch.setenv("SOLRAY_TOKEN", "0" * 32)
    with pytest.raises(ConnectionError, match="authentication failed"):
        ray.init(address=in_cluster_env["address"])
    assert not ray.is_initialized()


def test_status_shows_pending_demands(in_cluster_env):
    ray.init(address="auto")
    stuck = on_w.options(resources={"w": 5}).remote()  # more "w" than any node has
    wait_for(lambda: "{CPU: 1, w: 5}: 1+ pending" in solray_cli("status").stdout, 15, "the pending demand")
    ray.cancel(stuck)


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)
    both = solray_cli("start", check=False)
    assert both.returncode == 2 and "--head or --address" in both.stderr
    bad = solray_cli("start", "--head", "--resources={bad", check=False)
    assert bad.returncode == 2 and "JSON" in bad.stderr
    bad_labels = solray_cli("start", "--head", "--labels=zone", check=False)
    assert bad_labels.returncode == 2 and "'zone' is not key=value" in bad_labels.stderr
    nohead = solray_cli("start", "--address=127.0.0.1:1", check=False)
    assert nohead.returncode == 1 and "SOLRAY_TOKEN" in nohead.stderr and "Traceback" not in nohead.stderr
    status = solray_cli("status", check=False)
    assert status.returncode == 1 and "Could not find any running solray cluster" in status.stderr


def test_stop_force_kills_nodes_and_workers(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)
    port = free_port()
    try:
        solray_cli("start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false")
        solray_cli("start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.2", "--num-cpus=1",
                   '--resources={"w": 1}')
        ray.init(address="auto")
        ray.get([on_w.remote(), where.remote()])
        pids = cluster_processes(tmp_path)
        assert len(pids) >= 6  # two nodes, their fork servers, their workers
        out = solray_cli("stop", "--force").stdout
        assert "Stopped 2" in out
        # SIGKILLed nodes cannot clean up: their workers and fork servers exit on their own.
        wait_for(lambda: all_gone(pids), 15, "every process of the cluster to exit")
    finally:
        ray.shutdown()
        solray_cli("stop", "--force", check=False)
    assert not (tmp_path / "current_cluster.json").exists()
    assert not (tmp_path / f"cluster-{port}.json").exists()
    assert not list((tmp_path / "nodes").glob("*.json"))


def test_start_block_stays_in_the_foreground(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)
    port = free_port()
    cli = subprocess.Popen(
        [sys.executable, "-m", "solray.cli.main", "start", "--head", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )
    try:
        wait_for(lambda: (tmp_path / "current_cluster.json").exists(), 30, "the head to start")
        wait_for(lambda: cluster_processes(tmp_path), 10, "the node to be recorded")
        pids = cluster_processes(tmp_path)
        assert "Active: 1" in solray_cli("status").stdout
        assert cli.poll() is None  # still in the foreground
        cli.send_signal(signal.SIGTERM)
        cli.wait(30)
        wait_for(lambda: all_gone(pids), 15, "the node to stop with its CLI")
        assert not list((tmp_path / "nodes").glob("*.json"))
    finally:
        if cli.poll() is None:
            cli.kill()
        solray_cli("stop", "--force", check=False)
