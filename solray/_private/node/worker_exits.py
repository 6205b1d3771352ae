"""Workers that exit, are killed or sit idle, and the jobs they belong to.

Part of ``NodeDaemon`` (a mixin: the state lives in ``NodeDaemon.__init__``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from solray._private import config
from solray._private.node.records import (
    DEAD,
    IDLE,
    LEASED,
    WorkerRecord,
)
from solray._private.rpc.connection import Connection, RpcError

logger = logging.getLogger(__name__)


class WorkerExitsMixin:
    """Worker deaths, kills, idle reaping and job ends (see the module doc)."""

    # ------------------------------------------------------------------ worker exits
    def _worker_gone(self, w: WorkerRecord) -> None:
        if w.state == DEAD:
            return
        w.state = DEAD
        if w.lease is not None:
            self._release_lease(w.lease)
        if w.waiting is not None:
            lease = w.waiting
            w.waiting = None
            self._release_lease(lease)
            if not lease.future.done():
                lease.future.set_exception(RuntimeError("the worker process exited during startup"))
        self.workers.pop(w.worker_id, None)

    def _kill(self, w: WorkerRecord) -> None:
        if w.pid:
            try:
                os.kill(w.pid, signal.SIGKILL)
            except OSError:
                pass

    def _h_kill_worker(self, conn: Connection, worker_id: str) -> bool:
        w = self.workers.get(worker_id)
        if w is None:
            return False
        self._kill(w)
        return True

    def _h_job_info(self, conn: Connection, job: dict) -> None:
        """A job started somewhere in the cluster (sent by the control service): workers
        started here for it need its driver's address, runtime_env and import path."""
        self.jobs.setdefault(
            job["job_id"],
            {
                "driver_address": job.get("driver_address"),
                "namespace": job.get("namespace"),
                "runtime_env": job.get("runtime_env") or {},
                "sys_path": job.get("sys_path") or [],
            },
        )

    def _h_job_finished(self, conn: Connection, job_id: int) -> None:
        self._finish_job(job_id)

    def _finish_job(self, job_id: int) -> None:
        self.jobs.pop(job_id, None)
        for w in list(self.workers.values()):
            if w.job_id == job_id and not w.is_actor:
                self._kill(w)
                if w.conn is None:
                    self._worker_gone(w)

    async def _watch_starting_workers(self) -> None:
        """A worker that dies before it registers closes no connection, so nothing else
        would notice: the lease it was started for would wait (holding its resources)
        forever. Check such workers by PID and start a new worker for their lease."""
        while True:
            await asyncio.sleep(0.2)
            dead = [
                w for w in self.workers.values()
                if w.conn is None and w.pid is not None and w.state != DEAD and not _pid_alive(w.pid)
            ]
            for w in dead:
                lease, w.waiting = w.waiting, None
                w.lease = None
                w.state = DEAD
                self.workers.pop(w.worker_id, None)
                if lease is None or lease.lease_id not in self.leases:
                    continue
                if lease.future.done():  # its requester is gone
                    self._release_lease(lease)
                    continue
                logger.warning("worker %s (pid %s) died while starting; starting another", w.worker_id[:12], w.pid)
                nw = self._start_worker(w.job_id, w.env_key, w.env_vars, w.pip, w.packages)
                nw.state = LEASED
                nw.waiting = lease
                lease.worker = nw
                nw.is_actor = lease.for_actor
            if dead:
                self._schedule()

    async def _reap_idle_workers(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, config.IDLE_WORKER_TIMEOUT_S / 4))
            soft_limit = max(1, int(self.resources.total.get("CPU", 1)))
            idle = sorted(
                (w for w in self.workers.values() if w.state == IDLE), key=lambda w: w.idle_since
            )
            now = time.monotonic()
            expired = [w for w in idle[: max(0, len(idle) - soft_limit)] if now - w.idle_since > config.IDLE_WORKER_TIMEOUT_S]
            if expired:
                await asyncio.gather(*(self._reap_if_owning_nothing(w) for w in expired))

    async def _reap_if_owning_nothing(self, w: WorkerRecord) -> None:
        """Stop an idle worker unless it owns objects still referenced or actors (its exit
        would lose them: owners keep what they own alive, as in Ray)."""
        try:
            may_exit = await asyncio.wait_for(w.conn.request("may_exit"), 5) if w.conn is not None else True
        except (ConnectionError, RpcError, asyncio.TimeoutError):
            may_exit = True
        if may_exit and w.state == IDLE:
            self._kill(w)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
