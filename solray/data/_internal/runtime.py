"""The executor's IO boundary: every call into the solray core API goes through here.

The executor and operators decide *what* to run; this adapter runs it. Keeping the calls in
one place keeps the decision logic testable and the dependency one-way (public API only).
"""

from __future__ import annotations

from typing import Any

import solray
from solray.data._internal import tasks

_TASK_ARG_KEYS = (
    "num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "scheduling_strategy",
    "runtime_env", "label_selector", "max_retries", "retry_exceptions", "placement_group",
    "placement_group_bundle_index", "placement_group_capture_child_tasks", "fallback_strategy",
    "max_calls",
)
_ACTOR_ARG_KEYS = (
    "num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "scheduling_strategy",
    "runtime_env", "label_selector", "max_restarts", "max_task_retries", "max_concurrency",
    "placement_group", "placement_group_bundle_index", "fallback_strategy",
)


def ensure_initialized() -> None:
    if not solray.is_initialized():
        solray.init(ignore_reinit_error=True)


def task_options(remote_args: dict) -> dict:
    return {k: v for k, v in remote_args.items() if k in _TASK_ARG_KEYS and v is not None}


def actor_options(remote_args: dict) -> dict:
    return {k: v for k, v in remote_args.items() if k in _ACTOR_ARG_KEYS and v is not None}


class Runtime:
    """Submits Data's tasks and actors and waits on them, through solray's public API."""

    def __init__(self, default_scheduling_strategy: Any = None) -> None:
        ensure_initialized()
        self.default_strategy = default_scheduling_strategy
        res = solray.cluster_resources()
        # One node: placement has no choice to make, so keep the default (lease reuse).
        self.multi_node = sum(1 for n in solray.nodes() if n.get("Alive", n.get("alive"))) > 1
        self.total_cpus = float(res.get("CPU", 1.0)) or 1.0
        self.total_gpus = float(res.get("GPU", 0.0))
        self.object_store_memory = float(res.get("object_store_memory", 2 * 1024**3))

    def _with_strategy(self, opts: dict) -> dict:
        """Spread Data's tasks over the nodes (DataContext.scheduling_strategy), as Ray does."""
        if self.default_strategy and self.multi_node and "scheduling_strategy" not in opts \
                and "placement_group" not in opts:
            opts["scheduling_strategy"] = self.default_strategy
        return opts

    # --- objects -------------------------------------------------------------------------
    def put(self, value: Any):
        return solray.put(value)

    def get(self, ref: Any, timeout: float | None = None):
        return solray.get(ref, timeout=timeout)

    def wait(self, refs: list, num_returns: int = 1, timeout: float | None = None):
        return solray.wait(refs, num_returns=num_returns, timeout=timeout, fetch_local=False)

    # --- tasks ---------------------------------------------------------------------------
    def submit_map(self, stages_ref, task_idx: int, op_name: str, target_max_block_size,
                   inputs: list, remote_args: dict):
        opts = self._with_strategy(task_options(remote_args))
        opts["num_returns"] = 2
        return tasks.map_task.options(**opts).remote(
            stages_ref, task_idx, op_name, target_max_block_size, *inputs
        )

    def submit_fn(self, fn, args: list, num_returns: int = 1, remote_args: dict | None = None):
        """Run ``fn(*args)`` remotely (args that are refs arrive resolved)."""
        opts = task_options(remote_args or {})
        opts["num_returns"] = num_returns
        return tasks.generic_task.options(**opts).remote(fn, *args)

    # --- actors --------------------------------------------------------------------------
    def create_map_actor(self, stages_ref, op_name: str, remote_args: dict):
        opts = self._with_strategy(actor_options(remote_args))
        opts.setdefault("num_cpus", 1)
        return tasks.MapWorkerActor.options(**opts).remote(stages_ref, op_name)

    def actor_ready(self, actor):
        return actor.ready.remote()

    def submit_to_actor(self, actor, task_idx: int, target_max_block_size, inputs: list):
        return actor.run.options(num_returns=2).remote(task_idx, target_max_block_size, *inputs)

    def cancel(self, refs: list) -> None:
        """Best effort: stop tasks whose output nobody will read (after a limit, on early exit)."""
        for ref in refs:
            try:
                solray.cancel(ref)
            except Exception:
                pass

    def kill(self, actor) -> None:
        try:
            solray.kill(actor)
        except Exception:
            pass
