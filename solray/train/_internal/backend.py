"""Framework hooks around a worker group: wire the collective before the training function
runs and tear it down after."""

from __future__ import annotations

import dataclasses


class Backend:
    """Sets a framework's distributed mode up on a ``WorkerGroup``."""

    def on_start(self, worker_group, backend_config) -> None:
        """After the workers exist and have ranks, before the training function starts."""

    def wrap_train_fn(self, train_fn):
        """The function each worker's training thread runs (e.g. inside a communicator)."""
        return train_fn

    def on_shutdown(self, worker_group, backend_config) -> None:
        """After the training function finished on every worker (not after a failure)."""


@dataclasses.dataclass
class BackendConfig:
    """Settings of a framework's distributed mode; ``backend_cls`` applies them."""

    @property
    def backend_cls(self) -> type[Backend]:
        return Backend


def checked_config(value, config_cls: type, arg: str):
    """``value`` when it is None or a ``config_cls``; a clear TypeError otherwise."""
    if value is not None and not isinstance(value, config_cls):
        raise TypeError(f"{arg} must be a {config_cls.__name__}, got {type(value).__name__}")
    return value
