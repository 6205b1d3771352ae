"""``EnvContext``: the ``env_config`` dict an env is built with, plus where it runs."""

from __future__ import annotations

from typing import Any


class EnvContext(dict):
    """A dict (the user's ``env_config``) that also says which runner and vector slot it is for."""

    def __init__(self, env_config: dict | None, worker_index: int = 0, vector_index: int = 0,
                 num_workers: int = 0, remote: bool = False, recreated_worker: bool = False) -> None:
        super().__init__(env_config or {})
        self.worker_index = worker_index
        self.vector_index = vector_index
        self.num_workers = num_workers
        self.remote = remote
        self.recreated_worker = recreated_worker

    def copy_with_overrides(self, **kwargs: Any) -> EnvContext:
        fields = dict(worker_index=self.worker_index, vector_index=self.vector_index,
                      num_workers=self.num_workers, remote=self.remote, recreated_worker=self.recreated_worker)
        fields.update({k: v for k, v in kwargs.items() if k != "env_config"})
        return EnvContext(kwargs.get("env_config", dict(self)), **fields)
