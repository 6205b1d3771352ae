"""Training across nodes: ranks by node, and a node killed mid-training (loopback nodes)."""

from __future__ import annotations

import os
import tempfile
import threading

from cluster_helpers import start_cluster, wait_node_dead, worker_pids
from helpers import Gate, Mailbox, arrive_and_wait, post

import solray.train as train
from solray.train import Checkpoint, DataParallelTrainer, FailureConfig, RunConfig, ScalingConfig


def _loop(config):
    ctx = train.get_context()
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(open(os.path.join(d, "epoch")).read()) + 1
    for epoch in range(start, 3):
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "epoch"), "w").write(str(epoch))
            train.report({"epoch": epoch, "start": start, "node_rank": ctx.get_node_rank(),
                          "local_rank": ctx.get_local_rank(), "local_world": ctx.get_local_world_size()},
                         checkpoint=Checkpoint.from_directory(d) if ctx.get_world_rank() == 0 else None)
        if checkpoint is None and ctx.get_world_rank() == 1 and epoch == 0:
            post(config["mailbox"], str(os.getpid()))
            arrive_and_wait(config["gate"])


def test_node_killed_mid_training_restarts_on_the_other_nodes(tmp_path):
    with start_cluster(head_cpus=0, nodes=({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})) as cluster:
        mailbox, gate = Mailbox(), Gate()
        killed = []

        def kill_node():
            pid = int(mailbox.get(timeout=60))
            node = next(n for n in cluster.list_all_nodes() if pid in worker_pids(n))
            node.kill()
            killed.append(node)

        killer = threading.Thread(target=kill_node, daemon=True)
        killer.start()
        trainer = DataParallelTrainer(
            _loop, train_loop_config={"mailbox": mailbox.address, "gate": gate.address},
            scaling_config=ScalingConfig(num_workers=2),
            run_config=RunConfig(storage_path=str(tmp_path), name="nodes", verbose=0,
                                 failure_config=FailureConfig(max_failures=1)))
        try:
            result = trainer.fit()
        finally:
            gate.release()
            killer.join(timeout=10)
        assert killed, "the node was not killed"
        wait_node_dead(cluster, killed[0])
        assert result.error is None, result.error
        assert result.metrics["epoch"] == 2 and result.metrics["start"] == 1  # resumed after epoch 0
        # one worker per node: rank 0 is alone on the first node
        assert (result.metrics["node_rank"], result.metrics["local_rank"], result.metrics["local_world"]) == (0, 0, 1)
