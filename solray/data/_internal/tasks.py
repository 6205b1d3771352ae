"""The remote functions and the actor class that Data runs on the cluster.

Defined once at import (pickled by reference, so workers import this module instead of
receiving code). Every one returns ``(blocks, TaskResult)`` with ``num_returns=2``.
"""

from __future__ import annotations

from typing import Any

import solray
from solray.data._internal.task_context import TaskContext
from solray.data._internal.transforms import Stage, run_chain


def _run(stages: list[Stage], task_idx: int, op_name: str, target_max_block_size, inputs: tuple):
    TaskContext.set_current(TaskContext(task_idx, op_name))
    try:
        for s in stages:
            s.init()
        return run_chain(stages, inputs, target_max_block_size)
    finally:
        TaskContext.set_current(None)


@solray.remote
def map_task(stages, task_idx: int, op_name: str, target_max_block_size, *inputs):
    return _run(stages, task_idx, op_name, target_max_block_size, inputs)


class MapWorker:
    """An actor of an actor-pool map operator: builds callable classes once, then maps bundles."""

    def __init__(self, stages: list[Stage], op_name: str):
        self._stages = stages
        self._op_name = op_name
        TaskContext.set_current(TaskContext(0, op_name))
        for s in stages:
            s.init()

    def ready(self) -> bool:
        return True

    def run(self, task_idx: int, target_max_block_size, *inputs) -> Any:
        return _run(self._stages, task_idx, self._op_name, target_max_block_size, inputs)


MapWorkerActor = solray.remote(MapWorker)


@solray.remote
def generic_task(fn, *args):
    """Run an internal function (shuffle map/reduce steps) with its args resolved."""
    return fn(*args)
