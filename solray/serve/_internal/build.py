"""Flatten an ``Application`` graph into the deployment specs the controller runs.

Each deployment's code and constructor arguments are pickled here, in the driver, by value
(also for classes in the user's own modules), so the controller never imports user code
and replicas run exactly the code the driver had, wherever they start.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from typing import Any

import cloudpickle

from solray.serve.deployment import _UNSET, Application, Deployment


def _user_module(obj: Any):
    """The module ``obj`` comes from when that is the user's own code (not installed)."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__ == "__main__":
        return None
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    path = os.path.abspath(path)
    if module.__name__.split(".")[0] == "solray" or any(path.startswith(p) for p in installed):
        return None
    return module


def dumps_by_value(obj: Any, *also_from: Any) -> bytes:
    """``obj`` pickled with the user's modules (of it and of ``also_from``) by value."""
    modules = {m for m in (_user_module(o) for o in (obj, *also_from)) if m is not None}
    for m in modules:
        cloudpickle.register_pickle_by_value(m)
    try:
        return cloudpickle.dumps(obj)
    finally:
        for m in modules:
            cloudpickle.unregister_pickle_by_value(m)


def build_app(app: Application, app_name: str) -> tuple[list[dict], str]:
    """The specs of every deployment ``app`` reaches, and the name of its ingress."""
    from solray.serve.handle import DeploymentHandle

    if not isinstance(app, Application):
        if isinstance(app, Deployment):
            raise TypeError(f"serve.run takes an application: call {app.name}.bind(...) first.")
        raise TypeError(f"Expected an Application (a deployment's .bind(...)), got {type(app).__name__}.")
    specs: dict[str, dict] = {}
    seen: dict[int, str] = {}

    def visit(node: Application) -> str:
        if id(node) in seen:
            return seen[id(node)]
        dep = node.deployment
        name = dep.name
        suffix = 0
        while name in specs:
            suffix += 1
            name = f"{dep.name}_{suffix}"
        specs[name] = {}  # reserve the name before children take theirs
        seen[id(node)] = name

        def replace(value: Any) -> Any:
            if isinstance(value, Application):
                return DeploymentHandle(visit(value), app_name)
            if isinstance(value, (list, tuple)):
                return type(value)(replace(v) for v in value)
            if isinstance(value, dict):
                return {k: replace(v) for k, v in value.items()}
            return value

        args = replace(list(node._args))
        kwargs = replace(dict(node._kwargs))
        specs[name] = deployment_spec(dep, name, args, kwargs)
        return name

    ingress = visit(app)
    specs[ingress]["ingress"] = True
    return list(specs.values()), ingress


def deployment_spec(dep: Deployment, name: str, args: list, kwargs: dict) -> dict:
    target = dep.func_or_class
    try:
        def_blob = dumps_by_value(target)
    except Exception as e:
        raise TypeError(
            f"Deployment {name!r} cannot be serialized (does it capture a lock, socket or client?): {e}"
        ) from e
    try:
        args_blob = dumps_by_value((args, kwargs), target)
    except Exception as e:
        raise TypeError(f"The arguments bound to deployment {name!r} cannot be serialized: {e}") from e
    config = dep.config.to_dict()
    version = dep.version
    if version is None:
        # The code as pickled (closures included) and the arguments: a new class object or
        # new arguments make a new version, whose replicas replace the old ones.
        digest = hashlib.sha1(def_blob)
        digest.update(args_blob)
        digest.update(repr(sorted((config.get("ray_actor_options") or {}).items())).encode())
        version = digest.hexdigest()[:16]
    return {
        "name": name,
        "def_blob": def_blob,
        "args_blob": args_blob,
        "config": config,
        "version": version,
        "ingress": False,
        "route_prefix": None if dep._route_prefix is _UNSET else dep._route_prefix,
    }



def collect_deployments(app: Application) -> list[Deployment]:
    """Every deployment ``app`` reaches, ingress first (as a config file lists them)."""
    found: list[Deployment] = []

    def walk(value: Any) -> None:
        if isinstance(value, Application):
            if value.deployment not in found:
                found.append(value.deployment)
            for v in (*value._args, *value._kwargs.values()):
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(app)
    return found
