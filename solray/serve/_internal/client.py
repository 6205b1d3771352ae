"""Per-process Serve client: the controller's handle, routers, and their long-polls.

Every process that calls deployments (the driver, proxies, replicas composing others) has
one ``ServeClient``. It owns a small event loop on a daemon thread where long-polls wait for
the controller to publish replica changes; routing itself happens in the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import solray
from solray import exceptions
from solray._private.worker import state
from solray.serve._internal.constants import CONTROLLER_NAME, SERVE_NAMESPACE, replicas_key
from solray.serve._internal.router import Router
from solray.serve.exceptions import RayServeException

logger = logging.getLogger("solray.serve")

_lock = threading.Lock()
_client: ServeClient | None = None


class ServeClient:
    def __init__(self, worker: Any, controller: Any) -> None:
        self.worker = worker
        self.controller = controller
        self.routers: dict[tuple[str, str], Router] = {}
        self.closed = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="serve-client", daemon=True)
        self._thread.start()

    def router(self, app: str, deployment: str) -> Router:
        key = (app, deployment)
        router = self.routers.get(key)
        if router is None:
            with _lock:
                router = self.routers.get(key)
                if router is None:
                    def report(router_id: str, queued: int) -> None:
                        self.controller.record_queued.remote(app, deployment, router_id, queued)

                    router = Router(app, deployment, report)
                    self.watch(replicas_key(app, deployment), router.on_table)
                    self.routers[key] = router
        return router

    def watch(self, key: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback`` with the controller's value for ``key`` now and on each change."""
        asyncio.run_coroutine_threadsafe(self._poll(key, callback), self.loop)

    async def _poll(self, key: str, callback: Callable[[Any], None]) -> None:
        version = -1
        while not self.closed:
            try:
                version, value = await self.controller.listen.remote(key, version)
            except (exceptions.RayActorError, ConnectionError, OSError):
                return  # Serve was shut down; a new client is made if it starts again
            except Exception:  # noqa: BLE001 - keep polling through transient errors
                logger.exception("serve: polling the controller for %s failed", key)
                await asyncio.sleep(0.5)
                continue
            try:
                callback(value)
            except Exception:  # noqa: BLE001
                logger.exception("serve: applying the update of %s failed", key)

    def run(self, coro: Any):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.closed = True

        async def stop() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            self.loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop)
        except RuntimeError:  # the loop is closed already
            pass


def get_client(create_missing: bool = False) -> ServeClient:
    """This process's client for the running Serve instance (RayServeException if none)."""
    global _client
    worker = state.get_core_worker(required=False)
    if worker is None:
        if not create_missing:
            raise RayServeException("Serve is not running: call serve.run() or serve.start() first.")
        solray.init()
        worker = state.get_core_worker()
    client = _client
    if client is not None and client.worker is worker and not client.closed:
        return client
    try:
        controller = solray.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        raise RayServeException(
            "There is no Serve instance running on this cluster: call serve.run() or serve.start() first."
        ) from None
    with _lock:
        if _client is not None and (_client.worker is not worker or _client.closed):
            _client.close()
        if _client is None or _client.worker is not worker or _client.closed:
            _client = ServeClient(worker, controller)
        return _client


def drop_client() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
