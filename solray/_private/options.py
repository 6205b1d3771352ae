"""Validation of ``@remote`` / ``.options()`` arguments, at decoration time, as in Ray."""

from __future__ import annotations

import numbers
from typing import Any

TASK_OPTIONS = {
    "num_cpus", "num_gpus", "resources", "memory", "object_store_memory", "accelerator_type",
    "num_returns", "max_retries", "retry_exceptions", "max_calls", "name", "runtime_env",
    "scheduling_strategy", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "label_selector", "enable_task_events",
    "_metadata", "_generator_backpressure_num_objects", "fallback_strategy",
}
ACTOR_OPTIONS = {
    "num_cpus", "num_gpus", "resources", "memory", "object_store_memory", "accelerator_type",
    "max_restarts", "max_task_retries", "max_concurrency", "max_pending_calls", "name",
    "namespace", "lifetime", "get_if_exists", "runtime_env", "scheduling_strategy",
    "concurrency_groups", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "label_selector", "enable_task_events",
    "allow_out_of_order_execution", "_metadata", "fallback_strategy",
}
METHOD_OPTIONS = {"num_returns", "name", "concurrency_group", "max_task_retries", "retry_exceptions",
                  "enable_task_events", "_generator_backpressure_num_objects", "tensor_transport"}


def _non_negative(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(f"The option '{name}' must be a non-negative number, got {value!r}.")


def _int_at_least(name: str, value: Any, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"The option '{name}' must be an integer >= {low}, got {value!r}.")


def validate(options: dict, kind: str) -> dict:
    """Check option names and values; ``kind`` is "task", "actor" or "method"."""
    valid = {"task": TASK_OPTIONS, "actor": ACTOR_OPTIONS, "method": METHOD_OPTIONS}[kind]
    for key in options:
        if key not in valid:
            what = {"task": "remote functions", "actor": "actors", "method": "actor methods"}[kind]
            raise ValueError(
                f"Invalid option keyword {key} for {what}. Valid ones are {sorted(valid)}."
            )
    for key in ("num_cpus", "num_gpus", "memory", "object_store_memory"):
        _non_negative(key, options.get(key))
    gpus = options.get("num_gpus")
    if gpus is not None and gpus > 1 and int(gpus) != gpus:
        raise ValueError(f"num_gpus above 1 must be a whole number, got {gpus}.")
    res = options.get("resources")
    if res is not None:
        if not isinstance(res, dict):
            raise TypeError(f"The option 'resources' must be a dict, got {type(res).__name__}.")
        for k, v in res.items():
            if k in ("CPU", "GPU"):
                raise ValueError(
                    f"Use the 'num_{k.lower()}s' option instead of resources={{'{k}': ...}}."
                )
            if not isinstance(k, str):
                raise TypeError(f"Resource names must be strings, got {k!r}.")
            _non_negative(f"resources['{k}']", v)
    nr = options.get("num_returns")
    if nr is not None and nr not in ("dynamic", "streaming"):
        _int_at_least("num_returns", nr, 0)
    _int_at_least("max_retries", options.get("max_retries"), -1)
    _int_at_least("max_restarts", options.get("max_restarts"), -1)
    _int_at_least("max_task_retries", options.get("max_task_retries"), -1)
    _int_at_least("max_calls", options.get("max_calls"), 0)
    _int_at_least("max_concurrency", options.get("max_concurrency"), 1)
    _int_at_least("max_pending_calls", options.get("max_pending_calls"), -1)
    re = options.get("retry_exceptions")
    if re is not None and not isinstance(re, bool):
        if not isinstance(re, (list, tuple)) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in re
        ):
            raise TypeError("The option 'retry_exceptions' must be a bool or a list of exception types.")
    lifetime = options.get("lifetime")
    if lifetime not in (None, "detached", "non_detached"):
        raise ValueError(f"The option 'lifetime' must be None, 'detached' or 'non_detached', got {lifetime!r}.")
    for key in ("name", "namespace", "concurrency_group"):
        v = options.get(key)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"The option '{key}' must be a string, got {type(v).__name__}.")
    if options.get("name") == "":
        raise ValueError("Actor name must not be empty.")
    env = options.get("runtime_env")
    if env is not None and not isinstance(env, dict):
        raise TypeError(f"The option 'runtime_env' must be a dict, got {type(env).__name__}.")
    if env and "pip" in env:  # canonical form (a requirements file is read here, once)
        from solray._private.runtime_env import pip

        options["runtime_env"] = pip.normalize_runtime_env(env)
    if options.get("label_selector") is not None:
        from solray._private.scheduling.labels import parse_selector

        parse_selector(options["label_selector"])  # a bad selector fails here, naming itself
    strategy = options.get("scheduling_strategy")
    if strategy is not None and not isinstance(strategy, str) and not hasattr(strategy, "_solray_strategy"):
        raise TypeError(f"Invalid scheduling_strategy {strategy!r}.")
    if isinstance(strategy, str) and strategy not in ("DEFAULT", "SPREAD"):
        raise ValueError(f"Invalid scheduling_strategy {strategy!r}: use 'DEFAULT', 'SPREAD' or a strategy object.")
    groups = options.get("concurrency_groups")
    if groups is not None:
        if not isinstance(groups, dict):
            raise TypeError("The option 'concurrency_groups' must be a dict of name -> max concurrency.")
        for g, n in groups.items():
            _int_at_least(f"concurrency_groups['{g}']", n, 1)
    return options


def task_resources(options: dict, default_cpus: float) -> dict[str, float]:
    res = {"CPU": options.get("num_cpus", default_cpus) if options.get("num_cpus") is not None else default_cpus}
    if options.get("num_gpus"):
        res["GPU"] = options["num_gpus"]
    if options.get("memory"):
        res["memory"] = options["memory"]
    for k, v in (options.get("resources") or {}).items():
        res[k] = v
    return {k: float(v) for k, v in res.items() if v}


def env_vars_of(options: dict) -> dict:
    """The env_vars a task or actor runs with: its own over those of the submitting task."""
    from solray._private.worker import state

    worker = state.get_core_worker(required=False)
    inherited = getattr(worker, "inherited_env_vars", None) or {}
    env = options.get("runtime_env") or {}
    return {**inherited, **{str(k): str(v) for k, v in (env.get("env_vars") or {}).items()}}


def pip_of(options: dict) -> dict | None:
    """The pip environment a task or actor runs in: its own, else that of the submitting
    task (None: the job's, which the node daemon applies)."""
    env = options.get("runtime_env") or {}
    if "pip" in env:
        return env["pip"]
    from solray._private.worker import state

    worker = state.get_core_worker(required=False)
    return getattr(worker, "inherited_pip", None)


# (cluster, folders) -> their package URIs: a folder is zipped and uploaded once per process.
_UPLOADED_PACKAGES: dict[tuple[str, str], dict] = {}


def packages_of(options: dict) -> dict | None:
    """The working_dir/py_modules a task or actor runs with, as package URIs: its own (local
    folders are uploaded once per process), else the submitting task's (None: the job's)."""
    from solray._private.worker import state

    env = options.get("runtime_env") or {}
    own = {k: env[k] for k in ("working_dir", "py_modules") if env.get(k)}
    worker = state.get_core_worker()
    if not own:
        return getattr(worker, "inherited_packages", None)
    key = (worker.control_address, repr((sorted(own.items()), env.get("excludes"))))
    cache = _UPLOADED_PACKAGES
    if key not in cache:
        from solray._private.runtime_env import packaging

        uploaded = worker.run_sync(
            packaging.upload_local_folders(
                {**own, "excludes": env.get("excludes")}, lambda *a: worker.control.request("kv_put", list(a))
            )
        )
        cache[key] = {k: uploaded[k] for k in own}
    return cache[key]


def env_key(env_vars: dict, pip: dict | None, packages: dict | None = None) -> str:
    """Workers are reused only for tasks of the same environment: this names it."""
    key = repr(sorted(env_vars.items())) if env_vars else ""
    if pip:
        from solray._private.runtime_env import pip as pip_env

        key += "|pip:" + pip_env.env_hash(pip)
    if packages:
        key += "|pkg:" + repr(sorted(packages.items()))
    return key
