"""Chaos: a 3-node loopback cluster runs thousands of tasks, restartable actors and large
objects while worker processes, and then one whole worker node, are killed at random by PID.
The workload's result must still be exactly right.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
from cluster_helpers import start_cluster, worker_pids
from helpers import wait_for

import solray as ray
from solray._private.worker import state

SMALL_TASKS = 2000
BLOCKS = 24
BLOCK = 1 << 18  # int64 elements: 2 MB blocks, in shared memory
ACTORS = 3
ACTOR_CALLS = 300
RETRIES = 20


@ray.remote(max_retries=RETRIES)
def square(i):
    return i * i


@ray.remote(max_retries=RETRIES)
def make_block(i):
    return np.full(BLOCK, i, dtype=np.int64)


@ray.remote(max_retries=RETRIES)
def block_sum(block):
    return int(block.sum())


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Doubler:
    def double(self, x):
        return 2 * x


class Chaos(threading.Thread):
    """Kills a random worker process every few tens of milliseconds; kills a whole worker
    node (its node process, by PID) when asked."""

    def __init__(self, cluster, seed: int):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.kill_node_now = threading.Event()
        self.killed_workers = 0
        self.killed_node = None

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.02, 0.1)):
            if self.kill_node_now.is_set() and self.killed_node is None:
                self.killed_node = self.rng.choice(sorted(self.cluster.worker_nodes, key=lambda n: n.node_id))
                os.kill(self.killed_node.process.pid, signal.SIGKILL)
            alive = [n for n in self.cluster.list_all_nodes() if n.process.poll() is None]
            pids = [p for n in alive for p in worker_pids(n)]
            if pids:
                try:
                    os.kill(self.rng.choice(pids), signal.SIGKILL)
                    self.killed_workers += 1
                except ProcessLookupError:
                    pass


def test_chaos_workload_is_exactly_right():
    seed = int(os.environ.get("SOLRAY_CHAOS_SEED", random.randrange(1 << 30)))
    print(f"\nchaos seed {seed} (rerun with SOLRAY_CHAOS_SEED={seed})")
    nodes = ({"num_cpus": 2}, {"num_cpus": 2})
    with start_cluster(head_cpus=2, nodes=nodes) as cluster:
        worker = state.get_core_worker()
        started = time.monotonic()
        chaos = Chaos(cluster, seed)
        actors = [Doubler.remote() for _ in range(ACTORS)]
        ray.get([a.double.remote(0) for a in actors])
        chaos.start()
        try:
            # Large objects spread over every node, so the node that dies takes some along.
            blocks = [make_block.options(scheduling_strategy="SPREAD").remote(i) for i in range(BLOCKS)]
            squares = [square.remote(i) for i in range(SMALL_TASKS)]
            doubled = [actors[i % ACTORS].double.remote(i) for i in range(ACTOR_CALLS)]
            ray.wait(blocks, num_returns=BLOCKS, timeout=60)
            chaos.kill_node_now.set()
            wait_for(lambda: chaos.killed_node is not None, 10, "the node kill")
            sums = [block_sum.remote(b) for b in blocks]

            assert sum(ray.get(squares, timeout=120)) == sum(i * i for i in range(SMALL_TASKS))
            assert ray.get(doubled, timeout=120) == [2 * i for i in range(ACTOR_CALLS)]
            assert ray.get(sums, timeout=120) == [i * BLOCK for i in range(BLOCKS)]
            for i, block in enumerate(ray.get(blocks, timeout=120)):  # read back on the head
                assert block.shape == (BLOCK,) and (block == i).all()
        finally:
            chaos.stop.set()
            chaos.join()
        restarts = sum(a["num_restarts"] for a in worker.control_call("list_actors"))
        elapsed = time.monotonic() - started
        print(
            f"chaos: {SMALL_TASKS + 2 * BLOCKS} tasks, {ACTOR_CALLS} actor calls in {elapsed:.1f} s; "
            f"killed {chaos.killed_workers} workers and node {chaos.killed_node.node_ip_address}; "
            f"tasks retried {worker.task_retries}, actors restarted {restarts}, "
            f"objects reconstructed {worker.reconstructions}"
        )
        assert chaos.killed_workers > 0
