"""The DAG API: bind() builds graphs, execute() runs them as tasks and actor calls."""

from __future__ import annotations

import solray
from solray.dag import InputNode


@solray.remote
def add(a, b):
    return a + b


@solray.remote
class Acc:
    def __init__(self, start):
        self.total = start

    def add(self, x):
        self.total += x
        return self.total


def test_function_graph_runs_dependencies_first(ray_start):
    dag = add.bind(add.bind(1, 2), add.bind(3, 4))
    assert solray.get(dag.execute()) == 10


def test_input_node_and_actor_methods(ray_start):
    with InputNode() as inp:
        acc = Acc.bind(100)
        dag = acc.add.bind(add.bind(inp, 1))
    assert solray.get(dag.execute(5)) == 106


def test_method_bind_on_live_handle(ray_start):
    acc = Acc.remote(0)
    assert solray.get(acc.add.bind(add.bind(2, 3)).execute()) == 5
