"""Autoscaler benchmarks on either engine: RAYMOD=ray|solray (default solray).

    .venv/bin/python benchmarks/autoscaler.py
    RAYMOD=ray .venv-ray/bin/python benchmarks/autoscaler.py
    .venv/bin/python benchmarks/autoscaler.py --json /tmp/solray-autoscaler.json

A 1-CPU head whose autoscaler may add up to three 1-CPU worker nodes on this machine (solray:
the ``local`` provider; Ray: its fake multi-node provider, which starts real raylets the same
way, with the 1 s update interval Ray's own ``AutoscalingCluster`` uses; solray's monitor
also passes once a second). Ray is started with ``ray start --head`` on free ports and a
temporary folder of its own, and stopped by killing the processes that name that folder
(never ``ray stop``, which would stop every Ray cluster on the machine). Metrics (``s``: lower
is better):

  scale-up to 4 nodes          from submitting 4 one-CPU tasks that wait for each other
                               (through files: time.sleep keeps the CPU) until all four
                               run at once (three nodes added)
  scale-down after idle        from the tasks' end until only the head is alive, minus the
                               idle timeout (--idle-s): the autoscaler's own delay
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _engine import import_engine  # noqa: E402  (a sibling module: run as a script)

ENGINE = os.environ.get("RAYMOD", "solray")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayAutoscaling:
    """Ray's fake multi-node autoscaler, started like ``AutoscalingCluster`` minus ``ray stop``."""

    def __init__(self, idle_s: float, workers: int):
        import ray
        import yaml

        defaults = os.path.join(os.path.dirname(ray.__file__), "autoscaler/_private/fake_multi_node/example.yaml")
        if not os.path.exists(defaults):
            # Ray's autoscaler fills every config out from this file, and the wheel (2.60) does
            # not ship it: the fake multi-node autoscaler only runs from a source checkout.
            raise SystemExit(f"# ray: cannot run its local (fake multi-node) autoscaler: {defaults} is not "
                             "in this Ray installation (it ships with a source checkout only)")
        self.tmp = tempfile.mkdtemp(prefix="as-bench-ray-")
        base = yaml.safe_load(open(defaults))
        base["available_node_types"] = {
            "cpu1": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": workers},
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
        }
        base.update(max_workers=workers, idle_timeout_minutes=idle_s / 60, upscaling_speed=1.0)
        cfg = os.path.join(self.tmp, "cluster.json")
        with open(cfg, "w") as f:
            json.dump(base, f)
        port = free_port()
        env = dict(os.environ, AUTOSCALER_UPDATE_INTERVAL_S="1", RAY_FAKE_CLUSTER="1")
        subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}",
                        f"--autoscaling-config={cfg}", "--num-cpus=1", f"--temp-dir={self.tmp}",
                        f"--dashboard-port={free_port()}", "--disable-usage-stats"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.address = f"127.0.0.1:{port}"

    def stop(self) -> None:
        import psutil

        mine = [p for p in psutil.process_iter(["cmdline"]) if self.tmp in " ".join(p.info["cmdline"] or [])]
        for p in mine:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(mine, timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


class SolrayAutoscaling:
    def __init__(self, idle_s: float, workers: int):
        from solray.autoscaler import AutoscalerConfig, LocalNodeProvider, Monitor, NodeType
        from solray.cluster_utils import Cluster

        self.tmp = tempfile.mkdtemp(prefix="as-bench-solray-")
        os.environ.update(SOLRAY_TMPDIR=self.tmp, SOLRAY_CONFIG_DIR=os.path.join(self.tmp, "config"))
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        self.provider = LocalNodeProvider(self.cluster.address, self.cluster.token, self.cluster.session_root)
        config = AutoscalerConfig({"cpu1": NodeType("cpu1", {"CPU": 1}, max_workers=workers)},
                                  max_workers=workers, idle_timeout_s=idle_s)
        self.monitor = Monitor(config, self.provider, self.cluster.address, self.cluster.token).start()
        self.address = self.cluster.address

    def stop(self) -> None:
        self.monitor.stop()
        for node in self.provider.non_terminated_nodes():
            self.provider.terminate_node(node.provider_id)
        self.cluster.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)


def report(results: list, name: str, value: float, unit: str) -> None:
    results.append((name, value, unit))
    print(f"{name:<40} {value:>12.3f} {unit}", flush=True)


def run(ray, results: list, idle_s: float, workers: int) -> None:
    # The tasks meet through files (all nodes share this machine): waiting in ray.get would
    # lend the task's CPU back and let two tasks share a node.
    meeting = tempfile.mkdtemp(prefix="as-bench-meeting-")

    @ray.remote(num_cpus=1)
    def attend(folder, i, n):
        open(os.path.join(folder, str(i)), "w").close()
        while len(os.listdir(folder)) < n:
            time.sleep(0.01)
        return ray.get_runtime_context().get_node_id()

    n = workers + 1
    start = time.perf_counter()
    refs = [attend.remote(meeting, i, n) for i in range(n)]
    while len(os.listdir(meeting)) < n:
        time.sleep(0.01)
    report(results, f"scale-up to {n} nodes", time.perf_counter() - start, "s")
    assert len(set(ray.get(refs))) == n
    shutil.rmtree(meeting, ignore_errors=True)
    done = time.perf_counter()
    while sum(1 for node in ray.nodes() if node["Alive"]) > 1:
        time.sleep(0.1)
    report(results, "scale-down after idle", time.perf_counter() - done - idle_s, "s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle-s", type=float, default=6.0)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    ray = import_engine("ray" if ENGINE == "ray" else "solray")
    cluster = (RayAutoscaling if ENGINE == "ray" else SolrayAutoscaling)(args.idle_s, args.workers)
    results: list = []
    try:
        ray.init(address=cluster.address)
        run(ray, results, args.idle_s, args.workers)
    finally:
        ray.shutdown()
        cluster.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": ENGINE, "results": [{"name": n, "value": v, "unit": u} for n, v, u in results]}, f, indent=1)


if __name__ == "__main__":
    main()
