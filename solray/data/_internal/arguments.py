"""Validation of the arguments that map-like transforms share (compute, resources, columns)."""

from __future__ import annotations

import inspect
from typing import Any

from solray.data.compute import ActorPoolStrategy, ComputeStrategy, TaskPoolStrategy


def check_fn(fn: Any, api: str) -> None:
    if fn is None or not callable(fn):
        raise TypeError(f"{api}: fn must be a function or a callable class, got {type(fn).__name__}: {fn!r}")


def resolve_compute(fn, compute, concurrency, api: str) -> ComputeStrategy | None:
    is_class = inspect.isclass(fn)
    if isinstance(compute, str):
        if compute == "tasks":
            compute = TaskPoolStrategy()
        elif compute == "actors":
            compute = ActorPoolStrategy()
        else:
            raise ValueError(f"{api}: compute must be 'tasks', 'actors' or a ComputeStrategy, got {compute!r}")
    if compute is not None and not isinstance(compute, ComputeStrategy):
        raise ValueError(f"{api}: compute must be a ComputeStrategy, got {compute!r}")
    if compute is not None and concurrency is not None:
        raise ValueError(f"{api}: pass either compute or concurrency, not both")
    if concurrency is not None:
        if isinstance(concurrency, bool):
            raise ValueError(f"{api}: concurrency must be an int or a (min, max) tuple, got {concurrency!r}")
        if isinstance(concurrency, int):
            if concurrency < 1:
                raise ValueError(f"{api}: concurrency must be >= 1, got {concurrency}")
            compute = ActorPoolStrategy(size=concurrency) if is_class else TaskPoolStrategy(size=concurrency)
        elif isinstance(concurrency, tuple) and len(concurrency) in (2, 3):
            if not is_class:
                raise ValueError(
                    f"{api}: concurrency={concurrency!r} (an autoscaling range) needs a callable class; "
                    "for a function pass an int"
                )
            lo, hi = concurrency[0], concurrency[1]
            init = concurrency[2] if len(concurrency) == 3 else None
            compute = ActorPoolStrategy(min_size=lo, max_size=hi, initial_size=init)
        else:
            raise ValueError(f"{api}: concurrency must be an int or a (min, max) tuple, got {concurrency!r}")
    if is_class and isinstance(compute, TaskPoolStrategy):
        raise ValueError(f"{api}: a callable class runs on actors; use concurrency= or ActorPoolStrategy")
    return compute


def remote_args(num_cpus, num_gpus, memory, ray_remote_args: dict, api: str) -> dict:
    args = dict(ray_remote_args)
    for name, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{api}: {name} must be a non-negative number, got {v!r}")
            args[name] = v
    return {k: v for k, v in args.items() if v is not None}


def as_list(value, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{what} must be a column name or a list of column names, got {value!r}")
