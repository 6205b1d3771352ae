"""solray: Ray's API, rebuilt in Python. ``import solray as ray`` runs Ray programs."""

from __future__ import annotations

from typing import Any

from solray import exceptions
from solray._private.api import (
    get,
    init,
    is_initialized,
    put,
    shutdown,
    wait,
)
from solray._private.api_actors import (
    available_resources,
    cancel,
    cluster_resources,
    get_actor,
    get_gpu_ids,
    kill,
    nodes,
)
from solray._private.objects.object_ref import (
    DynamicObjectRefGenerator,
    ObjectRef,
    ObjectRefGenerator,
)
from solray._version import __version__
from solray.actor import ActorClass, ActorHandle, method
from solray.remote_function import RemoteFunction
from solray.runtime_context import get_runtime_context


def remote(*args: Any, **kwargs: Any) -> Any:
    """Turn a function into a task or a class into an actor, with or without options.

    ``@remote`` or ``@remote(num_cpus=2, max_retries=1)``.
    """
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError(
            "The @remote decorator must be applied either with no arguments and no "
            "parentheses, for example '@remote', or with keyword arguments only, for "
            "example '@remote(num_returns=2)'."
        )
    return lambda fn_or_class: _make_remote(fn_or_class, kwargs)


def _make_remote(obj: Any, options: dict) -> Any:
    import inspect

    if inspect.isclass(obj):
        return ActorClass(obj, options)
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj):
        return RemoteFunction(obj, options)
    raise TypeError("The @remote decorator must be applied to either a function or a class.")


def __getattr__(name: str) -> Any:
    # Libraries load on first use so ``import solray`` stays fast.
    import importlib

    if name in ("util", "data", "train", "tune", "serve", "rllib", "job_submission", "cluster_utils", "dag", "air"):
        return importlib.import_module(f"solray.{name}")
    raise AttributeError(f"module 'solray' has no attribute {name!r}")


__all__ = [
    "ActorClass",
    "ActorHandle",
    "DynamicObjectRefGenerator",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "__version__",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "wait",
]
