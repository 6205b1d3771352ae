"""Utilities on top of the core API (Ray's ``ray.util``)."""

from __future__ import annotations

from solray._private.serialization.inspect import inspect_serializability
from solray.util import queue
from solray.util.actor_pool import ActorPool

__all__ = ["ActorPool", "inspect_serializability", "queue"]
