"""Multi-node benchmarks on a loopback cluster, on either engine: RAYMOD=ray|solray.

    .venv/bin/python benchmarks/cluster.py
    RAYMOD=ray .venv-ray/bin/python benchmarks/cluster.py
    .venv/bin/python benchmarks/cluster.py --only transfer --json /tmp/solray-cluster.json

Each engine's own ``cluster_utils.Cluster`` starts a head and worker nodes as real processes
on this machine; the driver runs on the head. Every metric prints one line, ``name value unit``
(``GB/s`` and ``/s``: higher is better; ``s``: lower is better). Both engines run with their
default failure-detection settings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _engine import import_engine  # noqa: E402  (a sibling module: run as a script)

MB = 1 << 20
GB = 1 << 30



class Bench:
    def __init__(self, engine: Any, name: str, only: str | None):
        self.ray = engine
        self.name = name
        self.only = only
        self.results: list[tuple[str, float, str]] = []
        cluster_utils = importlib.import_module(f"{name}.cluster_utils")
        self.Cluster = cluster_utils.Cluster

    def wanted(self, metric: str) -> bool:
        return self.only is None or self.only in metric

    def report(self, metric: str, value: float, unit: str) -> None:
        self.results.append((metric, value, unit))
        print(f"{metric:<44} {value:>12.3f} {unit}", flush=True)

    # ---- engine differences --------------------------------------------------------------
    @staticmethod
    def node_id(node: Any) -> str:
        nid = getattr(node, "node_id", None) or node.unique_id
        return nid if isinstance(nid, str) else nid.hex()

    def node_pids(self, node: Any) -> list[int]:
        """The node's own process(es): solray's node process, Ray's raylet."""
        if self.name == "solray":
            return [node.process.pid]
        return [p.process.pid for p in node.all_processes.get("raylet", [])]

    def kill_node(self, cluster: Any, node: Any) -> None:
        """SIGKILL a worker node's processes without waiting for the cluster to notice."""
        if self.name == "solray":
            node.process.kill()
            node.process.wait(10)
        else:
            node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
        cluster.worker_nodes.remove(node)

    def alive(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n["Alive"] for n in self.ray.nodes())

    # ---- the run -------------------------------------------------------------------------
    def run(self) -> None:
        ray = self.ray
        cluster = self.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": int(2.5 * GB)}
        )
        b = cluster.add_node(num_cpus=2, resources={"b": 1, "w": 1}, object_store_memory=int(2.5 * GB))
        cluster.add_node(num_cpus=2, resources={"c": 1}, object_store_memory=512 * MB)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        try:
            self.transfer(b)
            self.tasks()
            self.placement_groups()
            self.lost_object(cluster, b)
            self.dead_node(cluster)
        finally:
            ray.shutdown()
            cluster.shutdown()

    def transfer(self, b: Any) -> None:
        """GB/s of a get on the head of an object made on node b (pull + map)."""
        import numpy as np

        ray = self.ray

        @ray.remote(resources={"b": 1})
        def make(n):
            return np.ones(n, dtype=np.uint8)

        for label, size, reps in (("100MB", 100 * MB, 5), ("1GB", GB, 3)):
            metric = f"cross-node transfer {label}"
            if not self.wanted(metric):
                continue
            rates = []
            for _ in range(reps):
                ref = make.remote(size)
                ray.wait([ref], fetch_local=False)
                start = time.perf_counter()
                arr = ray.get(ref)
                elapsed = time.perf_counter() - start
                assert arr.nbytes == size and arr[-1] == 1
                rates.append(size / elapsed / 1e9)
                del arr, ref
            self.report(metric, statistics.median(rates), "GB/s")

    def tasks(self) -> None:
        ray = self.ray

        @ray.remote
        def noop():
            return None

        for label, strategy in (("spread", "SPREAD"), ("default", "DEFAULT")):
            metric = f"tasks/s {label} over 3 nodes"
            if not self.wanted(metric):
                continue
            f = noop.options(scheduling_strategy=strategy)
            ray.get([f.remote() for _ in range(200)])  # warm: workers on every node
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < 2.0:
                ray.get([f.remote() for _ in range(500)])
                n += 500
            self.report(metric, n / (time.perf_counter() - start), "/s")

    def placement_groups(self) -> None:
        metric = "placement groups created+removed"
        if not self.wanted(metric):
            return
        try:
            pg_mod = importlib.import_module(f"{self.name}.util.placement_group")
        except ImportError:
            print(f"{metric:<44} {'skipped':>12} (no {self.name}.util.placement_group)", flush=True)
            return
        ray = self.ray
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2.0:
            pg = pg_mod.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
            ray.get(pg.ready(), timeout=30)
            pg_mod.remove_placement_group(pg)
            n += 1
        self.report(metric, n / (time.perf_counter() - start), "/s")

    def lost_object(self, cluster: Any, b: Any) -> None:
        """Seconds from killing the node holding an object to a get of it returning (the
        owner notices the loss and runs the task again on another node)."""
        metric = "lost object recovery (10MB)"
        if not self.wanted(metric):
            return
        import numpy as np

        ray = self.ray

        @ray.remote(resources={"w": 1}, max_retries=3)
        def make(n):
            return np.ones(n, dtype=np.uint8)

        ref = make.remote(10 * MB)  # only b has "w" yet
        ray.wait([ref], fetch_local=False)
        cluster.add_node(num_cpus=1, resources={"w": 1}, object_store_memory=256 * MB)
        cluster.wait_for_nodes()
        start = time.perf_counter()
        self.kill_node(cluster, b)
        arr = ray.get(ref, timeout=300)
        self.report(metric, time.perf_counter() - start, "s")
        assert arr.nbytes == 10 * MB

    def dead_node(self, cluster: Any) -> None:
        """Seconds until ``nodes()`` shows a node dead: killed (its process gone) and frozen
        (SIGSTOP: connections stay open, only missed heartbeats tell)."""
        for label in ("killed", "frozen"):
            metric = f"dead node detection ({label})"
            if not self.wanted(metric):
                continue
            node = cluster.add_node(num_cpus=1, object_store_memory=128 * MB)
            cluster.wait_for_nodes()
            nid = self.node_id(node)
            pids = self.node_pids(node)
            start = time.perf_counter()
            if label == "killed":
                self.kill_node(cluster, node)
            else:
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
            cap = 90.0
            while self.alive(nid) and time.perf_counter() - start < cap:
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            if label == "frozen":
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
                if node in cluster.worker_nodes:
                    self.kill_node(cluster, node)
            if elapsed >= cap:
                print(f"{metric:<44} {'>' + str(cap):>12} s (not detected)", flush=True)
            else:
                self.report(metric, elapsed, "s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", help="run only the metrics whose name contains this substring")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    name = os.environ.get("RAYMOD", "solray")
    engine = import_engine(name)
    print(f"# engine={name} {getattr(engine, '__version__', '?')} cpus={os.cpu_count()}", flush=True)
    bench = Bench(engine, name, args.only)
    started = time.time()
    bench.run()
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "engine": name,
                    "engine_version": getattr(engine, "__version__", None),
                    "duration_s": round(time.time() - started, 1),
                    "results": [{"name": n, "value": v, "unit": u} for n, v, u in bench.results],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
