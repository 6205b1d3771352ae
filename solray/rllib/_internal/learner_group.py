"""``LearnerGroup``: one learner in this process (``num_learners=0``) or N learner actors
that train data-parallel with ``torch.distributed`` over gloo.

With actors, every batch is split into N contiguous shards, each put into the object store
once and handed to its learner; gradients are averaged inside ``apply_gradients``. Weights
and state come from rank 0 (all ranks hold the same after each step).
"""

from __future__ import annotations

import socket
from typing import Any

import numpy as np

import solray


class LearnerActor:
    """Hosts one learner in an actor and joins the process group."""

    def __init__(self, learner_cls: type, config: Any, module_specs: dict, rank: int, world_size: int) -> None:
        import torch

        torch.set_num_threads(1)
        self.learner = learner_cls(config, module_specs, rank=rank, world_size=world_size)

    def rendezvous_address(self, head_host: str) -> str:
        host = _reachable_ip(head_host)
        with socket.socket() as s:
            s.bind((host, 0))
            return f"{host}:{s.getsockname()[1]}"

    def init_distributed(self, address: str) -> None:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://{address}",
                                rank=self.learner.rank, world_size=self.learner.world_size)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.learner, method)(*args, **kwargs)

    def shutdown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _reachable_ip(peer_host: str) -> str:
    """This host's address on the route to ``peer_host`` (127.0.0.1 on one machine)."""
    if peer_host in ("127.0.0.1", "localhost", ""):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((peer_host, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def shard(batch: dict[str, np.ndarray], rank: int, world_size: int) -> dict[str, np.ndarray]:
    size = len(next(iter(batch.values())))
    bounds = np.linspace(0, size, world_size + 1).astype(int)
    return {k: v[bounds[rank]:bounds[rank + 1]] for k, v in batch.items()}


class LearnerGroup:
    def __init__(self, config: Any, learner_cls: type, module_specs: dict, bundles: Any = None) -> None:
        self.config = config
        self.num_learners = config.num_learners
        self._local = None
        self._actors: list = []
        if self.num_learners == 0:
            self._local = learner_cls(config, module_specs)
            return
        actor_cls = solray.remote(num_cpus=config.num_cpus_per_learner,
                                  num_gpus=config.num_gpus_per_learner)(LearnerActor)
        n = self.num_learners
        self._actors = [actor_cls.options(**(bundles.options() if bundles else {}))
                        .remote(learner_cls, config, module_specs, rank, n) for rank in range(n)]
        head = solray.get_runtime_context().gcs_address.rsplit(":", 1)[0]
        address = solray.get(self._actors[0].rendezvous_address.remote(head))
        solray.get([a.init_distributed.remote(address) for a in self._actors])

    @property
    def is_local(self) -> bool:
        return self._local is not None

    def _call_all(self, method: str, *args: Any, **kwargs: Any) -> list:
        if self._local is not None:
            return [getattr(self._local, method)(*args, **kwargs)]
        return solray.get([a.call.remote(method, *args, **kwargs) for a in self._actors])

    def _call_first(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._local is not None:
            return getattr(self._local, method)(*args, **kwargs)
        return solray.get(self._actors[0].call.remote(method, *args, **kwargs))

    def update(self, batches: dict[str, dict], **kwargs: Any) -> dict:
        if self._local is not None:
            return self._local.update(batches, **kwargs)
        n = self.num_learners
        # A module with fewer rows than learners is skipped by all of them (collectives must match).
        usable = {mid: b for mid, b in batches.items() if len(next(iter(b.values()))) >= n}
        refs = [solray.put({mid: shard(b, rank, n) for mid, b in usable.items()}) for rank in range(n)]
        results = solray.get([a.call.remote("update", ref, **kwargs) for a, ref in zip(self._actors, refs, strict=True)])
        merged = results[0]
        for mid, metrics in merged.items():
            if "_td_error" in metrics:  # per-row TD errors, in shard order = batch order
                metrics["_td_error"] = np.concatenate([r[mid]["_td_error"] for r in results])
        return merged

    def get_weights(self, module_ids: list[str] | None = None) -> dict:
        return self._call_first("get_weights", module_ids)

    def set_weights(self, weights: dict) -> None:
        self._call_all("set_weights", weights)

    def get_state(self) -> dict:
        return self._call_first("get_state")

    def set_state(self, state: dict) -> None:
        self._call_all("set_state", state)

    def local_learner(self) -> Any:
        return self._local

    def stop(self) -> None:
        for actor in self._actors:
            try:
                solray.get(actor.shutdown.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - best effort before the kill
                pass
            solray.kill(actor)
        self._actors = []
