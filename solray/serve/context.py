"""What a replica knows about itself and about the request it is serving."""

from __future__ import annotations

import contextvars
import dataclasses
from typing import Any

from solray.serve.exceptions import RayServeException


@dataclasses.dataclass(frozen=True)
class ReplicaID:
    unique_id: str
    deployment_name: str
    app_name: str

    def to_full_id_str(self) -> str:
        return f"{self.app_name}#{self.deployment_name}#{self.unique_id}"


@dataclasses.dataclass
class ReplicaContext:
    """``serve.get_replica_context()`` inside a replica."""

    replica_id: ReplicaID
    servable_object: Any = None

    @property
    def app_name(self) -> str:
        return self.replica_id.app_name

    @property
    def deployment(self) -> str:
        return self.replica_id.deployment_name

    @property
    def replica_tag(self) -> str:
        return self.replica_id.unique_id


_replica_context: ReplicaContext | None = None
_request_model_id: contextvars.ContextVar[str] = contextvars.ContextVar("serve_multiplexed_model_id", default="")


def set_replica_context(ctx: ReplicaContext) -> None:
    global _replica_context
    _replica_context = ctx


def get_replica_context() -> ReplicaContext:
    """The replica this code runs in; RayServeException outside a replica."""
    if _replica_context is None:
        raise RayServeException(
            "`serve.get_replica_context()` may only be called from within a Serve deployment's replica."
        )
    return _replica_context


def get_multiplexed_model_id() -> str:
    """The model id the current request asked for (``multiplexed_model_id`` or its HTTP header)."""
    return _request_model_id.get()
