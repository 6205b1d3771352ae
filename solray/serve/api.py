"""Serve's functions: ``start``, ``run``, ``status``, ``delete``, ``shutdown`` and handle lookup."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import solray
from solray.serve._internal import client as client_mod
from solray.serve._internal.build import build_app
from solray.serve._internal.constants import CONTROLLER_NAME, DEFAULT_APP_NAME, SERVE_NAMESPACE
from solray.serve.config import HTTPOptions
from solray.serve.deployment import _UNSET, Application
from solray.serve.exceptions import RayServeException
from solray.serve.handle import DeploymentHandle
from solray.serve.schema import ServeStatus, status_from_dict

logger = logging.getLogger("solray.serve")


def _controller(create: bool) -> Any:
    if not solray.is_initialized():
        if not create:
            return None
        solray.init()
    try:
        return solray.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        if not create:
            return None
    from solray.serve._internal.controller import ServeController
    from solray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # On this node (with the proxy beside it): `localhost:8000` is where the user is.
    here = NodeAffinitySchedulingStrategy(solray.get_runtime_context().get_node_id(), soft=True)
    return solray.remote(ServeController).options(
        name=CONTROLLER_NAME, namespace=SERVE_NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=100000, scheduling_strategy=here,
    ).remote()


def start(http_options: HTTPOptions | dict | None = None, detached: bool = True, **kwargs: Any) -> None:
    """Start Serve on the cluster (its controller and HTTP proxy), if it is not running yet."""
    options = HTTPOptions.from_value(http_options or kwargs.pop("http_options", None))
    if kwargs:
        raise TypeError(f"Unknown serve.start options: {sorted(kwargs)}.")
    controller = _controller(create=True)
    solray.get(controller.start_proxy.remote(_plain(options)))
    running = solray.get(controller.get_http_options.remote())
    if http_options is not None and running and running["port"] != options.port:
        logger.warning("serve: already running with its HTTP proxy on port %s; http_options ignored", running["port"])


def _plain(options: HTTPOptions) -> dict:
    import dataclasses

    return dataclasses.asdict(options)


def _check_prefix(prefix: Any) -> None:
    if prefix is None:
        return
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ValueError(f"route_prefix must start with '/', got {prefix!r}.")
    if prefix != "/" and prefix.endswith("/"):
        raise ValueError(f"route_prefix must not end with '/' unless it is '/', got {prefix!r}.")
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"route_prefix may not contain wildcards, got {prefix!r}.")


def deploy_app(app: Application, name: str, route_prefix: Any = _UNSET) -> Any:
    """Send ``app`` to the controller (starting Serve if needed); returns the controller."""
    if not isinstance(name, str) or not name:
        raise ValueError("The application name must be a non-empty string.")
    specs, ingress = build_app(app, name)
    if route_prefix is _UNSET:
        given = next(s["route_prefix"] for s in specs if s["name"] == ingress)
        route_prefix = "/" if given is None else given
    _check_prefix(route_prefix)
    controller = _controller(create=True)
    solray.get(controller.start_proxy.remote(None))
    solray.get(controller.deploy_app.remote(name, route_prefix, specs, ingress))
    return controller


def run(target: Application, blocking: bool = False, name: str = DEFAULT_APP_NAME,
        route_prefix: Any = _UNSET, **kwargs: Any) -> DeploymentHandle:
    """Deploy an application, wait until it is running, and return its ingress handle."""
    kwargs.pop("_local_testing_mode", None)
    if kwargs:
        raise TypeError(f"Unknown serve.run options: {sorted(kwargs)}.")
    controller = deploy_app(target, name, route_prefix)
    statuses = solray.get(controller.wait_apps.remote([name], None))
    app = statuses.get(name, {})
    if app.get("status") == "DEPLOY_FAILED":
        raise RuntimeError(f"Deploying application {name!r} failed: {app.get('message')}")
    prefix = app.get("route_prefix")
    if prefix is not None:
        opts = solray.get(controller.get_http_options.remote()) or {}
        print(f"Application {name!r} is ready at http://{opts.get('host', '127.0.0.1')}:"
              f"{opts.get('port', 8000)}{prefix}", file=sys.stderr)
    handle = DeploymentHandle(app.get("ingress", ""), name)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            shutdown()
    return handle


def status() -> ServeStatus:
    """Every application's status, with each deployment's and its replicas' states."""
    controller = _controller(create=False)
    if controller is None:
        return ServeStatus({}, {})
    return status_from_dict(solray.get(controller.get_status.remote()))


def delete(name: str, _blocking: bool = True) -> None:
    """Delete an application: its replicas drain and stop, its route goes away."""
    controller = _controller(create=False)
    if controller is None:
        return
    solray.get(controller.delete_apps.remote([name]))
    if _blocking:
        solray.get(controller.wait_apps.remote([name], None, True))


def shutdown() -> None:
    """Delete every application and stop Serve's controller and proxy."""
    controller = _controller(create=False)
    if controller is not None:
        try:
            solray.get(controller.shutdown.remote())
        finally:
            solray.kill(controller)  # frees its name at once: a new serve.start makes a new one
            from solray._private.worker import state
            from solray.serve._internal.constants import KV_NAMESPACE, KV_STATUS_KEY

            # The dashboard reads the status from here: no Serve, no applications.
            state.get_core_worker().control_call("kv_del", [KV_NAMESPACE, KV_STATUS_KEY])
    client_mod.drop_client()


def get_app_handle(name: str) -> DeploymentHandle:
    """The handle of application ``name``'s ingress deployment."""
    controller = _controller(create=False)
    apps = solray.get(controller.get_app_info.remote()) if controller is not None else {}
    if name not in apps:
        raise RayServeException(f"Application {name!r} does not exist.")
    return DeploymentHandle(apps[name]["ingress"], name)


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> DeploymentHandle:
    """A handle to deployment ``deployment_name`` of ``app_name`` (default: the current
    replica's application, else the only or the default application)."""
    if app_name is None:
        from solray.serve.context import _replica_context

        if _replica_context is not None:
            app_name = _replica_context.app_name
        else:
            controller = _controller(create=False)
            apps = solray.get(controller.get_app_info.remote()) if controller is not None else {}
            app_name = next(iter(apps)) if len(apps) == 1 else DEFAULT_APP_NAME
    return DeploymentHandle(deployment_name, app_name)
