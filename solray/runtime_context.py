"""``solray.get_runtime_context()``: who and where the calling code is."""

from __future__ import annotations

import os
from typing import Any

from solray._private.worker import state


def _job_hex(job_id: int | None) -> str | None:
    return None if job_id is None else int(job_id).to_bytes(4, "little").hex()


class RuntimeContext:
    """Information about the current driver, task or actor (Ray's ``RuntimeContext``)."""

    def __init__(self, worker):
        self._worker = worker

    def get_job_id(self) -> str:
        return _job_hex(self._worker.job_id)

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    def get_node_id(self) -> str:
        return self._worker.node_id

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    def get_worker_id(self) -> str:
        return self._worker.worker_id

    def is_canceled(self) -> bool:
        """Whether ``cancel()`` was called on the running task or sync actor method.

        A running actor method is not interrupted by ``cancel()``: it can poll this and
        return early. Async actors see ``asyncio.CancelledError`` instead.
        """
        w = self._worker
        task_id = w.context.task_id
        if task_id is None or w.executor is None:
            raise RuntimeError("is_canceled() is only available inside a task or an actor method.")
        if w.executor.actor_loop is not None:
            raise RuntimeError("is_canceled() is not available in async actors: cancellation raises asyncio.CancelledError.")
        return task_id in w.executor.cancelled

    def get_task_id(self) -> str | None:
        tid = self._worker.context.task_id
        return tid.hex() if tid else None

    def get_task_name(self) -> str | None:
        """The current task's name: its ``name`` option, else the function's name."""
        if self._worker.context.task_id is None:
            return None
        return self._worker.context.task_name or None

    def get_actor_id(self) -> str | None:
        aid = self._worker.actor_id
        return aid.hex() if aid else None

    def get_actor_name(self) -> str | None:
        return self._worker.actor_name or None

    @property
    def namespace(self) -> str:
        return self._worker.namespace

    def get_namespace(self) -> str:
        return self._worker.namespace

    @property
    def current_actor(self) -> Any:
        from solray._private.api_actors import get_actor_by_id

        if self._worker.actor_id is None:
            raise RuntimeError("This method is only available in an actor.")
        return get_actor_by_id(self._worker.actor_id)

    def get_placement_group_id(self) -> str | None:
        from solray._private.scheduling.submission import current_placement

        placement = current_placement(self._worker)
        return placement[0] if placement else None

    def get_assigned_resources(self) -> dict:
        if self._worker.mode == "driver":
            return {}
        from solray._private.scheduling.bundles import original_resources

        return original_resources(self._worker.assigned_resources or {})

    def get_accelerator_ids(self) -> dict:
        gpus = self._worker.gpu_ids
        if self._worker.mode == "driver":
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            gpus = [g for g in visible.split(",") if g] if visible else []
        return {"GPU": [str(g) for g in gpus or []]}

    def get_runtime_env_string(self) -> str:
        import json

        return json.dumps(self._worker.runtime_env or {})

    @property
    def runtime_env(self) -> dict:
        return dict(self._worker.runtime_env or {})

    @property
    def gcs_address(self) -> str:
        return self._worker.control_address

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return bool(self._worker.actor_restarted)

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "namespace": self.namespace}


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(state.get_core_worker())
