"""``LightGBMConfig``: LightGBM's own socket network between the workers."""

from __future__ import annotations

import dataclasses

from solray.train._internal.backend import Backend, BackendConfig
from solray.train._internal.worker_group import free_port

_network: dict = {}


@dataclasses.dataclass
class LightGBMConfig(BackendConfig):
    """``tree_learner``: LightGBM's distributed learner ("data", "feature", "voting")."""

    tree_learner: str = "data"

    @property
    def backend_cls(self) -> type[Backend]:
        return _LightGBMBackend


def _set_network_params(params: dict) -> None:
    _network.clear()
    _network.update(params)


def get_network_params() -> dict:
    """The LightGBM parameters that join this worker to the others (``machines``,
    ``local_listen_port``, ``num_machines``, ``tree_learner``); merge them into ``params``."""
    return dict(_network)


class _LightGBMBackend(Backend):
    def on_start(self, worker_group, backend_config: LightGBMConfig) -> None:
        n = len(worker_group.workers)
        if n == 1:
            worker_group.execute(_set_network_params, {})
            return
        ports = worker_group.execute(free_port)
        machines = ",".join(f"{info.node_ip}:{port}" for info, port in zip(worker_group.infos, ports, strict=True))
        worker_group.execute_per_rank(_set_network_params, [
            ({"machines": machines, "local_listen_port": port, "num_machines": n,
              "tree_learner": backend_config.tree_learner, "pre_partition": True},)
            for port in ports
        ])
