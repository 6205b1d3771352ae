"""The Serve controller: a detached, named actor that owns every application's desired state
and reconciles replicas towards it (start, health-check, replace, roll, autoscale, drain).

Proxies and handles learn about replica changes by long-polling ``listen``; no request
passes through the controller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

import solray
from solray import exceptions
from solray._private.worker import state as worker_state
from solray.serve._internal import constants as C
from solray.serve._internal.deployment_state import (
    RUNNING,
    STARTING,
    STOPPING,
    DeploymentState,
    Replica,
)
from solray.serve.config import HTTPOptions

logger = logging.getLogger("solray.serve")
#: A replica still starting after this long gets a warning (usually: no node has its resources).
SLOW_START_S = 30.0


def _done(fut: Any) -> bool:
    return fut is not None and fut.done()


def _failed(fut: Any) -> BaseException | None:
    return None if fut.cancelled() else fut.exception()


async def _await(ref: Any) -> Any:
    return await ref


def _call(ref: Any) -> asyncio.Future:
    """A call's result as a future the control loop polls (its errors are read there)."""
    fut = asyncio.ensure_future(_await(ref))
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return fut


class ServeController:
    async def __init__(self) -> None:
        self.apps: dict[str, dict] = {}  # name -> {route_prefix, ingress, deployments: [names], deleting}
        self.deployments: dict[tuple[str, str], DeploymentState] = {}
        self.published: dict[str, tuple[int, Any]] = {}
        self.changed: dict[str, asyncio.Event] = {}
        self.status_changed = asyncio.Event()
        self.http_options: HTTPOptions | None = None
        self.proxy: Any = None
        self.proxy_info: dict = {}
        self.proxy_watch: Any = None
        self.last_status: str = ""
        self.deploy_times: dict[str, float] = {}
        self.loop_task = asyncio.ensure_future(self._run())

    # ---- long-poll ---------------------------------------------------------------------
    async def listen(self, key: str, known_version: int) -> tuple[int, Any]:
        """The value of ``key`` once its version differs from ``known_version`` (or after a while)."""
        version, value = self.published.get(key, (0, None))
        if version == known_version:
            event = self.changed.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), C.LISTEN_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass
            version, value = self.published.get(key, (0, None))
        return version, value

    def _publish(self, key: str, value: Any) -> None:
        version, old = self.published.get(key, (0, None))
        if version and old == value:
            return
        self.published[key] = (version + 1, value)
        event = self.changed.pop(key, None)
        if event is not None:
            event.set()

    # ---- HTTP proxy --------------------------------------------------------------------
    async def start_proxy(self, http_options: dict | None) -> dict:
        options = HTTPOptions.from_value(http_options)
        if self.proxy is not None:
            return self.proxy_info
        self.http_options = options
        await self._start_proxy()
        return self.proxy_info

    async def _start_proxy(self) -> None:
        from solray.serve._internal.proxy import ServeProxy
        from solray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # Next to the controller, where users look; detached as the controller is, so a
        # `serve deploy` driver that exits takes nothing with it.
        here = NodeAffinitySchedulingStrategy(solray.get_runtime_context().get_node_id(), soft=True)
        self.proxy = solray.remote(ServeProxy).options(
            num_cpus=0, max_concurrency=100000, namespace=C.SERVE_NAMESPACE, lifetime="detached",
            scheduling_strategy=here, name=f"{C.PROXY_NAME}-{time.time_ns()}").remote(
            dataclasses_dict(self.http_options))
        try:
            self.proxy_info = await self.proxy.ready.remote()
        except Exception as e:
            self.proxy = None
            raise RuntimeError(
                f"The Serve HTTP proxy could not listen on {self.http_options.host}:{self.http_options.port}: {e}"
            ) from None
        self.proxy_watch = _call(self.proxy.watch.remote())

    async def get_http_options(self) -> dict | None:
        return dataclasses_dict(self.http_options) if self.http_options else None

    # ---- applications ------------------------------------------------------------------
    async def deploy_app(self, name: str, route_prefix: str | None, specs: list[dict], ingress: str) -> None:
        for other, info in self.apps.items():
            if other != name and route_prefix is not None and info["route_prefix"] == route_prefix \
                    and not info["deleting"]:
                raise ValueError(f"Prefix {route_prefix} is being used by application {other!r}.")
        now = time.monotonic()
        old = self.apps.get(name)
        names = [s["name"] for s in specs]
        if old is not None:
            for dep in old["deployments"]:
                if dep not in names:
                    self.deployments[(name, dep)].delete()
        for spec in specs:
            key = (name, spec["name"])
            if key in self.deployments:
                self.deployments[key].apply(spec, now)
            else:
                self.deployments[key] = DeploymentState(name, spec, now)
        self.apps[name] = {"route_prefix": route_prefix, "ingress": ingress, "deleting": False,
                           "deployments": sorted(set(names) | set(old["deployments"] if old else []))}
        self.deploy_times[name] = time.time()
        self._reconcile()

    async def delete_apps(self, names: list[str]) -> None:
        for name in names:
            app = self.apps.get(name)
            if app is None:
                continue
            app["deleting"] = True
            for dep in app["deployments"]:
                self.deployments[(name, dep)].delete()
        self._reconcile()

    async def wait_apps(self, names: list[str], timeout_s: float | None, deleted: bool = False) -> dict:
        """Once every app in ``names`` is running (or gone, with ``deleted``) or has failed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            statuses = self._app_statuses()
            if deleted:
                if not any(n in self.apps for n in names):
                    return statuses
            elif all(statuses.get(n, {}).get("status") in ("RUNNING", "DEPLOY_FAILED") for n in names):
                return statuses
            event = self.status_changed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return statuses
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                return self._app_statuses()

    async def get_status(self) -> dict:
        return {"applications": self._app_statuses(), "proxy": dict(self.proxy_info),
                "http_options": dataclasses_dict(self.http_options) if self.http_options else None}

    async def get_app_info(self) -> dict:
        return {n: {"ingress": a["ingress"], "route_prefix": a["route_prefix"],
                    "deployments": list(a["deployments"])} for n, a in self.apps.items() if not a["deleting"]}

    async def record_queued(self, app: str, deployment: str, router_id: str, queued: int) -> None:
        """A router's count of requests waiting for a free replica (autoscaling load)."""
        state = self.deployments.get((app, deployment))
        if state is not None:
            state.record_queued(router_id, queued, time.monotonic())

    async def shutdown(self, timeout_s: float = 30.0) -> None:
        await self.delete_apps(list(self.apps))
        await self.wait_apps(list(self.apps), timeout_s, deleted=True)
        self.loop_task.cancel()
        for dep in self.deployments.values():
            for r in dep.replicas.values():
                _kill(r.actor)
        if self.proxy is not None:
            _kill(self.proxy)
            self.proxy = None

    # ---- the control loop ----------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                self._reconcile()
            except Exception:  # noqa: BLE001 - one bad step must not stop the controller
                logger.exception("serve controller: reconcile failed")
            await asyncio.sleep(C.CONTROL_LOOP_PERIOD_S)

    def _reconcile(self) -> None:
        now = time.monotonic()
        if self.proxy_watch is not None and self.proxy_watch.done() and self.proxy is not None:
            logger.warning("serve controller: the HTTP proxy died; starting a new one")
            self.proxy, self.proxy_watch = None, None
            asyncio.ensure_future(self._restart_proxy())
        for key, dep in list(self.deployments.items()):
            self._observe(dep, now)
            dep.autoscale(now)
            actions = dep.plan(now)
            for r in actions["start"]:
                self._start_replica(dep, r)
            for r in actions["reconfigure"]:
                r.actor.reconfigure.remote(dep.config.user_config)
            if dep.deleting and not dep.replicas:
                del self.deployments[key]
                self._publish(C.replicas_key(*key), {"exists": False})
            else:
                self._publish(C.replicas_key(*key), {
                    "exists": True,
                    "replicas": [(r.id, r.actor) for r in dep.routable()],
                    "max_ongoing": dep.config.max_ongoing_requests,
                    "max_queued": dep.config.max_queued_requests,
                    "lost": {rid: why for rid, (why, _) in dep.lost.items()},
                })
        for name, app in list(self.apps.items()):
            if app["deleting"] and not any((name, d) in self.deployments for d in app["deployments"]):
                del self.apps[name]
        self._publish(C.ROUTES_KEY, {a["route_prefix"]: (n, a["ingress"]) for n, a in self.apps.items()
                                     if not a["deleting"] and a["route_prefix"] is not None})
        self._report_status()

    def _observe(self, dep: DeploymentState, now: float) -> None:
        cfg = dep.config
        for r in list(dep.replicas.values()):
            if r.state == STARTING and not _done(r.ready) and not r.slow_start_noted \
                    and now - r.started_at > SLOW_START_S:
                r.slow_start_noted = True
                dep.message = (f"A replica of {dep.name!r} has not started after {SLOW_START_S:.0f}s: does the "
                               f"cluster have the resources it asks for ({_resources(cfg)})?")
                logger.warning("serve controller: %s", dep.message)
            if r.state == STARTING and _done(r.ready):
                error = _failed(r.ready)
                if error is None:
                    dep.on_started(r.id, now)
                    r.watch = _call(r.actor.watch.remote())
                else:
                    logger.error("serve controller: replica %s of %s failed to start: %s", r.id, dep.name, error)
                    dep.on_start_failed(r.id, _short(error))
                    _kill(r.actor)
                continue
            if r.state == RUNNING:
                if _done(r.watch):
                    logger.warning("serve controller: replica %s of %s died; replacing it", r.id, dep.name)
                    dep.on_lost(r.id, f"died: {_short(_failed(r.watch) or RuntimeError('exited'))}", now)
                    continue
                if r.health is not None and (r.health.done() or now - r.health_started > cfg.health_check_timeout_s):
                    error = _failed(r.health) if r.health.done() else TimeoutError("health check timed out")
                    r.health = None
                    if error is not None:
                        logger.warning("serve controller: replica %s of %s is unhealthy (%s); replacing it",
                                       r.id, dep.name, _short(error))
                        dep.on_lost(r.id, f"failed its health check ({_short(error)}) and was replaced", now)
                        _kill(r.actor)
                        continue
                    r.last_health_ok = now
                if r.health is None and now - r.last_health_ok >= cfg.health_check_period_s:
                    r.health = _call(r.actor.check_health.remote())
                    r.health_started = now
                if dep.policy is not None:
                    self._poll_metrics(r)
            if r.state == STOPPING:
                grace = cfg.graceful_shutdown_timeout_s
                if r.stop is None and r.actor is not None:
                    r.stop = _call(r.actor.prepare_for_shutdown.remote(grace))
                if r.actor is None or _done(r.stop) or now - r.stop_started > grace + 2.0:
                    _kill(r.actor)
                    dep.on_gone(r.id)

    def _poll_metrics(self, r: Replica) -> None:
        pending = r.metrics
        if pending is None:
            r.metrics = _call(r.actor.get_metrics.remote())
        elif pending.done():
            r.metrics = None
            if _failed(pending) is None:
                r.ongoing = pending.result()["ongoing"]

    def _start_replica(self, dep: DeploymentState, r: Replica) -> None:
        from solray.serve._internal.replica import ServeReplica

        options = {"num_cpus": 1, **(dep.config.ray_actor_options or {})}
        options.update(namespace=C.SERVE_NAMESPACE, max_concurrency=100000, lifetime="detached",
                       name=f"{C.REPLICA_PREFIX}::{dep.app}#{dep.name}#{r.id}")
        try:
            r.actor = solray.remote(ServeReplica).options(**options).remote(
                dep.app, dep.name, r.id, dep.spec["def_blob"], dep.spec["args_blob"], dep.config.user_config)
        except Exception as e:  # noqa: BLE001 - e.g. resources no node has
            dep.on_start_failed(r.id, _short(e))
            return
        r.ready = _call(r.actor.check_health.remote())

    async def _restart_proxy(self) -> None:
        try:
            await self._start_proxy()
        except Exception:  # noqa: BLE001
            logger.exception("serve controller: restarting the HTTP proxy failed")

    # ---- status ----------------------------------------------------------------------------
    def _app_statuses(self) -> dict:
        out = {}
        for name, app in self.apps.items():
            deps = {}
            for d in app["deployments"]:
                st = self.deployments.get((name, d))
                if st is None:
                    continue
                deps[d] = {"status": "DELETING" if st.deleting else st.status(), "message": st.message,
                           "replica_states": st.replica_states(), "target_replicas": st.target}
            statuses = [d["status"] for d in deps.values()]
            if app["deleting"]:
                status = "DELETING"
            elif "DEPLOY_FAILED" in statuses:
                status = "DEPLOY_FAILED"
            elif all(s in ("HEALTHY", "UPSCALING", "DOWNSCALING", "DELETING") for s in statuses):
                status = "RUNNING"
            else:
                status = "DEPLOYING"
            message = "; ".join(d["message"] for d in deps.values() if d["message"])
            out[name] = {"status": status, "message": message, "route_prefix": app["route_prefix"],
                         "ingress": app["ingress"], "last_deployed_time_s": self.deploy_times.get(name, 0.0),
                         "deployments": deps}
        return out

    def _report_status(self) -> None:
        statuses = self._app_statuses()
        text = json.dumps({"applications": statuses, "proxy": self.proxy_info,
                           "http_options": dataclasses_dict(self.http_options) if self.http_options else None},
                          sort_keys=True, default=str)
        if text == self.last_status:
            return
        self.last_status = text
        self.status_changed.set()
        self.status_changed = asyncio.Event()
        worker = worker_state.get_core_worker()
        payload = [C.KV_NAMESPACE, C.KV_STATUS_KEY, text.encode(), True]

        def put() -> None:  # the control connection belongs to the worker's IO loop
            fut = worker.control.request("kv_put", payload)
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())

        worker.loop.call_soon_threadsafe(put)


def dataclasses_dict(options: HTTPOptions) -> dict:
    return dataclasses.asdict(options)


def _resources(config: Any) -> str:
    options = {"num_cpus": 1, **(config.ray_actor_options or {})}
    keys = ("num_cpus", "num_gpus", "memory", "resources")
    return ", ".join(f"{k}={options[k]}" for k in keys if options.get(k))


def _short(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def _kill(actor: Any) -> None:
    if actor is None:
        return
    try:
        solray.kill(actor)
    except (ValueError, exceptions.RayError, ConnectionError):
        pass


__all__ = ["ServeController", "STARTING", "RUNNING", "STOPPING"]
