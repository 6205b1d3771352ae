"""Every node serves its own log files: a task's or actor's log is found on, and read
from, the node that ran it (no dashboard involved: control service + node daemons)."""

from __future__ import annotations

import json

from cluster_helpers import start_cluster

import solray as ray
from solray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from solray.util.state import get_log, list_logs


@ray.remote
class Talker:
    def say(self, text):
        import os

        print(text, flush=True)
        return os.getpid()


@ray.remote
def talk(text):
    print(text, flush=True)
    return ray.get_runtime_context().get_task_id()


def _text(**kwargs) -> str:
    return "".join(get_log(**kwargs))


def test_every_node_serves_its_own_logs():
    with start_cluster(head_cpus=1, nodes=({"num_cpus": 1, "resources": {"far": 1}},)) as cluster:
        other = cluster.list_all_nodes()[-1].node_id
        task_id = ray.get(talk.options(resources={"far": 1}).remote("far-node-marker"))
        assert "far-node-marker" in _text(task_id=task_id)  # found on, and read from, that node
        strategy = NodeAffinitySchedulingStrategy(other, soft=False)
        pid = ray.get(Talker.options(scheduling_strategy=strategy).remote().say.remote("far-actor"))
        groups = list_logs(node_id=other)
        assert any(f.endswith(f"-{pid}.log") for f in groups["worker_out"])
        assert not any(f.endswith(f"-{pid}.log") for f in list_logs().get("worker_out", []))  # not the head's
        assert "far-actor" in _text(node_id=other, pid=pid)
        assert json.dumps(groups)  # plain JSON data
