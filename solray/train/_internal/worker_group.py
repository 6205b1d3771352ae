"""A group of training worker actors placed in a placement group, with ranks by node.

The coordinator (the driver's ``fit()``, or a Tune trial) holds no resources itself, so
``num_workers`` one-CPU workers fit on a machine with ``num_workers`` CPUs.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import solray
from solray.air._internal import session as air_session
from solray.air.config import ScalingConfig
from solray.train._internal.session import TrainContext, TrainSession, WorkerInfo
from solray.util.placement_group import placement_group, remove_placement_group
from solray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

_PG_WAIT_NOTICE_S = 15.0


class TrainingFunctionError(Exception):
    """The training function raised on a worker (the cause is chained)."""


class RayTrainWorker:
    """One training worker: runs setup calls, then the training function in a thread."""

    def __init__(self) -> None:
        self._results: queue.Queue = queue.Queue()
        # report() returns once the coordinator asked for the next result, i.e. after it
        # committed this round's checkpoint (as in Ray: a reported checkpoint is durable).
        self._acks = threading.Semaphore(0)
        self._unacked = 0
        self._thread: threading.Thread | None = None
        self.info: WorkerInfo | None = None

    def node_info(self) -> dict:
        ctx = solray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "node_ip": _node_ip(),
            "pid": os.getpid(),
            "gpu_ids": [str(g) for g in solray.get_gpu_ids()],
        }

    def set_info(self, info: WorkerInfo) -> None:
        from solray._private.worker.logs import set_log_prefix

        self.info = info
        set_log_prefix(f"RayTrainWorker pid={os.getpid()}, rank={info.world_rank}")

    def execute(self, fn: Callable, *args: Any) -> Any:
        return fn(*args)

    def start_training(self, train_fn: Callable, context_args: dict, checkpoint, shards: dict) -> None:
        context = TrainContext(self.info, **context_args)
        session = TrainSession(context, checkpoint, shards, self._results, self._acks)

        def run() -> None:
            air_session.install(session)
            try:
                train_fn()
                self._results.put(("done", None, None))
            except BaseException as e:  # reported to the coordinator with its traceback
                e._solray_traceback = traceback.format_exc()
                self._results.put(("error", e, None))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                air_session.uninstall(session)

        self._thread = threading.Thread(target=run, name="solray-train-loop", daemon=True)
        self._thread.start()

    def next_result(self):
        """The next ("report", metrics, staged_checkpoint) or ("done",...); raises the
        training function's error."""
        if self._unacked:
            self._unacked -= 1
            self._acks.release()
        kind, payload, staged = self._results.get()
        if kind == "report":
            self._unacked += 1
        if kind == "error":
            tb = getattr(payload, "_solray_traceback", "")
            raise TrainingFunctionError(f"the training function failed on rank {self.info.world_rank}:\n{tb}") from payload
        return kind, payload, staged


def _node_ip() -> str:
    from solray._private.worker import state

    return state.get_core_worker().node_ip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def check_feasible(bundles: list[dict], strategy: str) -> None:
    """Fail now, naming demand and cluster, when the bundles can never be placed."""
    nodes = [n for n in solray.nodes() if n["Alive"]]
    capacity = [n["Resources"] for n in nodes]

    def fits(bundle: dict, res: dict) -> bool:
        return all(res.get(k, 0) >= v for k, v in bundle.items())

    def total(items: list[dict]) -> dict:
        out: dict[str, float] = {}
        for b in items:
            for k, v in b.items():
                out[k] = out.get(k, 0) + v
        return out

    demand = total(bundles)
    ok = all(any(fits(b, res) for res in capacity) for b in bundles) and fits(demand, total(capacity))
    if ok and strategy == "STRICT_PACK":
        ok = any(fits(demand, res) for res in capacity)
    if ok and strategy == "STRICT_SPREAD":
        ok = len(bundles) <= len(capacity)
    if not ok:
        shown = {k: v for k, v in total(capacity).items() if k in ("CPU", "GPU") or k in demand}
        raise ValueError(
            f"The training workers can never be scheduled: they need {len(bundles)} bundle(s) "
            f"{bundles} (total {demand}, strategy {strategy}) but the cluster has {len(nodes)} node(s) "
            f"with {shown} in all (per node: {[{k: r.get(k, 0) for k in demand} for r in capacity]}). "
            "Lower ScalingConfig(num_workers=..., resources_per_worker=...) or add nodes."
        )


class WorkerGroup:
    """``num_workers`` RayTrainWorker actors; rank 0 on the first node seen."""

    def __init__(self, scaling: ScalingConfig, pg=None, first_bundle: int = 1):
        self.scaling = scaling
        self._own_pg = pg is None
        worker_bundle = scaling._worker_resources()
        if pg is None:
            bundles = scaling.as_placement_group_bundles()
            first_bundle = 1
            if not bundles[0]:  # the coordinator needs nothing: no empty bundle
                bundles, first_bundle = bundles[1:], 0
            check_feasible(bundles, scaling.placement_strategy)
            pg = placement_group(bundles, strategy=scaling.placement_strategy)
            self._wait_ready(pg, bundles)
        self.pg = pg
        actor_cls = solray.remote(RayTrainWorker)
        custom = {k: v for k, v in worker_bundle.items() if k not in ("CPU", "GPU", "memory")}
        self.workers = [
            actor_cls.options(
                num_cpus=worker_bundle.get("CPU", 0),
                num_gpus=worker_bundle.get("GPU", 0),
                memory=worker_bundle.get("memory"),
                resources=custom or None,
                max_concurrency=2,
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, first_bundle + i),
            ).remote()
            for i in range(scaling.num_workers)
        ]
        nodes = solray.get([w.node_info.remote() for w in self.workers])
        self.infos, self.meta = self._assign_ranks(nodes)
        solray.get([w.set_info.remote(info) for w, info in zip(self.workers, self.infos, strict=True)])

    @staticmethod
    def _wait_ready(pg, bundles: list[dict]) -> None:
        start = time.monotonic()
        while not pg.wait(timeout_seconds=_PG_WAIT_NOTICE_S):
            print(
                f"(train) still waiting for resources for the training workers after "
                f"{time.monotonic() - start:.0f}s: need {bundles}, available now "
                f"{ {k: v for k, v in solray.available_resources().items() if k in ('CPU', 'GPU')} }",
                file=sys.stderr,
                flush=True,
            )

    def _assign_ranks(self, nodes: list[dict]) -> tuple[list[WorkerInfo], list[dict]]:
        """Workers on one node get consecutive ranks; nodes ordered by first appearance."""
        node_order: list[str] = []
        for n in nodes:
            if n["node_id"] not in node_order:
                node_order.append(n["node_id"])
        order = sorted(range(len(nodes)), key=lambda i: (node_order.index(nodes[i]["node_id"]), i))
        self.workers = [self.workers[i] for i in order]
        nodes = [nodes[i] for i in order]
        per_node = {nid: sum(1 for n in nodes if n["node_id"] == nid) for nid in node_order}
        seen: dict[str, int] = {}
        infos = []
        for rank, n in enumerate(nodes):
            local = seen.get(n["node_id"], 0)
            seen[n["node_id"]] = local + 1
            infos.append(WorkerInfo(
                world_rank=rank, local_rank=local, node_rank=node_order.index(n["node_id"]),
                world_size=len(nodes), local_world_size=per_node[n["node_id"]],
                node_id=n["node_id"], node_ip=n["node_ip"],
            ))
        return infos, nodes

    def execute(self, fn: Callable, *args: Any) -> list:
        """Run ``fn(*args)`` on every worker at once; their return values in rank order."""
        return solray.get([w.execute.remote(fn, *args) for w in self.workers])

    def execute_per_rank(self, fn: Callable, args_per_rank: list[tuple]) -> list:
        return solray.get([w.execute.remote(fn, *args) for w, args in zip(self.workers, args_per_rank, strict=True)])

    def execute_single(self, rank: int, fn: Callable, *args: Any) -> Any:
        return solray.get(self.workers[rank].execute.remote(fn, *args))

    def shutdown(self) -> None:
        for w in self.workers:
            try:
                solray.kill(w)
            except Exception:  # already dead
                pass
        if self._own_pg:
            try:
                remove_placement_group(self.pg)
            except Exception:  # the cluster is going away
                pass
