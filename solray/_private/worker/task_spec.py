"""Task specifications: what the owner keeps about a task and what it sends to a worker.

Arguments are pickled once at submission. Top-level ``ObjectRef`` arguments are replaced
by an ``ArgDep`` marker and resolved to their values before the task runs (Ray's
semantics); refs nested inside containers travel as refs and make the worker a borrower.
"""

from __future__ import annotations

from typing import Any

NORMAL_TASK = 0
ACTOR_CREATION = 1
ACTOR_TASK = 2


class ArgDep:
    """Placeholder for the value of the ``index``-th dependency of a task."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return (ArgDep, (self.index,))


class TaskSpec:
    """The owner-side record of one submitted task."""

    __slots__ = (
        "task_id",
        "kind",
        "name",
        "function",  # FunctionDescriptor
        "args_blob",
        "dep_refs",  # ObjectRefs whose values the task needs (kept alive until done)
        "dep_values",  # resolved wire values, same order as dep_refs
        "contained",  # ObjectRefs nested in args (kept alive until done)
        "num_returns",
        "return_refs",
        "resources",
        "options",
        "retries_left",
        "retry_exceptions",
        "sched_key",
        "actor_id",
        "method",
        "seq",
        "cancelled",
        "worker_address",
        "parent_task_id",
        "env_vars",
        "attempt",
        "placement",  # [pg hex, bundle index, capture child tasks, bundle specs] or None
    )

    def __init__(self, **kw: Any):
        for name in self.__slots__:
            setattr(self, name, kw.get(name))
        if self.cancelled is None:
            self.cancelled = False
        if self.attempt is None:
            self.attempt = 0

    def to_wire(self, owner: str, include_function: bool) -> dict:
        msg = {
            "t": self.task_id,
            "k": self.kind,
            "n": self.name,
            "a": self.args_blob,
            "d": self.dep_values or [],
            "r": self.num_returns,
            "o": owner,
            "c": [[r.binary(), r.owner_address()] for r in self.contained] if self.contained else None,
        }
        if self.options and self.options.get("max_calls"):
            msg["mc"] = self.options["max_calls"]
        if self.placement:
            msg["pg"] = self.placement
        if self.function is not None:
            msg["f"] = self.function.function_id
            if include_function:
                msg["fb"] = self.function.pickled
        if self.kind == ACTOR_TASK:
            msg["m"] = self.method
            msg["s"] = self.seq
            if self.options:
                cg = self.options.get("concurrency_group")
                if cg:
                    msg["cg"] = cg
        return msg


class FunctionDescriptor:
    """A function or class pickled once, identified by the hash of its bytes."""

    __slots__ = ("function_id", "pickled", "name", "module")

    def __init__(self, function_id: bytes, pickled: bytes, name: str, module: str):
        self.function_id = function_id
        self.pickled = pickled
        self.name = name
        self.module = module
