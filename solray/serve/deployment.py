"""``@serve.deployment``, ``Deployment.options()/.bind()`` and the ``Application`` graph."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from solray.serve.config import DeploymentConfig

_UNSET = object()
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(DeploymentConfig)}


class Deployment:
    """A class or function served by replicas. ``.bind(*args)`` makes an ``Application``."""

    def __init__(self, func_or_class: Callable, name: str, config: DeploymentConfig,
                 version: str | None = None, route_prefix: Any = _UNSET):
        self.func_or_class = func_or_class
        self._name = name
        self._config = config
        self._version = version
        self._route_prefix = route_prefix

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def num_replicas(self) -> int | None:
        return self._config.num_replicas

    @property
    def max_ongoing_requests(self) -> int:
        return self._config.max_ongoing_requests

    @property
    def user_config(self) -> Any:
        return self._config.user_config

    @property
    def ray_actor_options(self) -> dict:
        return self._config.ray_actor_options

    @property
    def autoscaling_config(self) -> Any:
        return self._config.autoscaling_config

    @property
    def config(self) -> DeploymentConfig:
        return self._config

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"Deployment {self._name!r} cannot be called directly: use {self._name}.bind(...) and "
            "serve.run(...), then call it through the returned handle or over HTTP."
        )

    def options(self, *, func_or_class: Callable | None = None, name: str | None = None,
                version: str | None = None, route_prefix: Any = _UNSET, **config: Any) -> Deployment:
        """A copy with some options changed (same names as ``@serve.deployment``)."""
        unknown = set(config) - _CONFIG_FIELDS
        if unknown:
            raise TypeError(f"Unknown deployment options: {sorted(unknown)}.")
        merged = self._config.to_dict()
        if "num_replicas" in config and config["num_replicas"] != "auto" and "autoscaling_config" not in config:
            merged["autoscaling_config"] = None
        if "autoscaling_config" in config and "num_replicas" not in config:
            merged["num_replicas"] = None
        merged.update(config)
        return Deployment(
            func_or_class or self.func_or_class,
            name or self._name,
            DeploymentConfig(**merged).validate(),
            version if version is not None else self._version,
            self._route_prefix if route_prefix is _UNSET else route_prefix,
        )

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """This deployment with its constructor arguments: an application (graph) to run.

        Applications among the arguments become ``DeploymentHandle``s in the replica.
        """
        return Application(self, args, kwargs)

    def __repr__(self) -> str:
        return f"Deployment(name={self._name})"


class Application:
    """A bound deployment and, through its arguments, the deployments it calls."""

    def __init__(self, deployment: Deployment, args: tuple, kwargs: dict):
        self._deployment = deployment
        self._args = args
        self._kwargs = kwargs

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def __repr__(self) -> str:
        return f"Application({self._deployment.name})"


def deployment(
    _func_or_class: Callable | None = None,
    name: str | None = None,
    version: str | None = None,
    num_replicas: int | str | None = _UNSET,
    route_prefix: Any = _UNSET,
    ray_actor_options: dict | None = None,
    user_config: Any = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int | None = None,
    autoscaling_config: Any = None,
    graceful_shutdown_wait_loop_s: float | None = None,
    graceful_shutdown_timeout_s: float | None = None,
    health_check_period_s: float | None = None,
    health_check_timeout_s: float | None = None,
    **unknown: Any,
) -> Any:
    """Make a class or function a deployment: ``@serve.deployment`` or ``@serve.deployment(...)``."""
    if unknown:
        raise TypeError(f"Unknown @serve.deployment options: {sorted(unknown)}.")
    given = {
        "num_replicas": None if num_replicas is _UNSET else num_replicas,
        "ray_actor_options": ray_actor_options,
        "user_config": user_config,
        "max_ongoing_requests": max_ongoing_requests,
        "max_queued_requests": max_queued_requests,
        "autoscaling_config": autoscaling_config,
        "graceful_shutdown_wait_loop_s": graceful_shutdown_wait_loop_s,
        "graceful_shutdown_timeout_s": graceful_shutdown_timeout_s,
        "health_check_period_s": health_check_period_s,
        "health_check_timeout_s": health_check_timeout_s,
    }
    if num_replicas is not _UNSET and num_replicas not in (None, "auto") and autoscaling_config is not None:
        raise ValueError("Manually setting num_replicas is not allowed when autoscaling_config is provided.")
    fields = {k: v for k, v in given.items() if v is not None}
    if "num_replicas" not in fields and autoscaling_config is None:
        fields["num_replicas"] = 1
    config = DeploymentConfig(**fields).validate()

    def decorate(func_or_class: Callable) -> Deployment:
        if not (inspect.isclass(func_or_class) or inspect.isfunction(func_or_class)):
            raise TypeError("@serve.deployment must decorate a class or a function.")
        return Deployment(func_or_class, name or func_or_class.__name__, config, version, route_prefix)

    return decorate(_func_or_class) if _func_or_class is not None else decorate
