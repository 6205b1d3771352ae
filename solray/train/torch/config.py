"""``TorchConfig``: torch.distributed over the worker group (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

from solray.train._internal.backend import Backend, BackendConfig
from solray.train._internal.worker_group import free_port

# Set in each worker by the backend: the torch device of this worker.
_local_state: dict = {"device_index": None, "use_gpu": False}


@dataclasses.dataclass
class TorchConfig(BackendConfig):
    """``backend``: "gloo" or "nccl" (default: nccl with GPUs, gloo without);
    ``init_method``: "env" or "tcp"; ``timeout_s``: collective timeout."""

    backend: str | None = None
    init_method: str = "env"
    timeout_s: int = 1800

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in ("gloo", "nccl", "mpi", "xccl", "hccl"):
            raise ValueError(f"TorchConfig(backend={self.backend!r}): use 'gloo' or 'nccl'")
        if self.init_method not in ("env", "tcp"):
            raise ValueError(f"TorchConfig(init_method={self.init_method!r}): use 'env' or 'tcp'")

    @property
    def backend_cls(self) -> type[Backend]:
        return _TorchBackend


def _setup_worker(rank: int, world_size: int, local_rank: int, local_world_size: int, node_rank: int,
                  master_addr: str, master_port: int, backend: str, init_method: str, timeout_s: int,
                  visible_devices: str | None, device_index: int | None) -> None:
    import torch
    import torch.distributed as dist

    if visible_devices is not None:
        # Every worker of a node sees all the node's training GPUs (NCCL peer access);
        # each uses its own one.
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    os.environ.update({
        "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world_size), "NODE_RANK": str(node_rank), "GROUP_RANK": str(node_rank),
        "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
    })
    _local_state["device_index"] = device_index
    _local_state["use_gpu"] = device_index is not None
    if device_index is not None:
        torch.cuda.set_device(device_index)
    if world_size > 1 and not dist.is_initialized():
        url = "env://" if init_method == "env" else f"tcp://{master_addr}:{master_port}"
        dist.init_process_group(backend=backend, init_method=url, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))


def _shutdown_worker() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class _TorchBackend(Backend):
    def on_start(self, worker_group, backend_config: TorchConfig) -> None:
        use_gpu = worker_group.scaling.use_gpu
        backend = backend_config.backend or ("nccl" if use_gpu else "gloo")
        master_addr = worker_group.infos[0].node_ip
        master_port = worker_group.execute_single(0, free_port)
        gpus_by_node: dict[str, list[str]] = {}
        for meta in worker_group.meta:
            for gpu in meta["gpu_ids"]:
                gpus_by_node.setdefault(meta["node_id"], [])
                if gpu not in gpus_by_node[meta["node_id"]]:
                    gpus_by_node[meta["node_id"]].append(gpu)
        args = []
        for info, meta in zip(worker_group.infos, worker_group.meta, strict=True):
            visible, index = None, None
            if use_gpu and meta["gpu_ids"]:
                node_gpus = sorted(gpus_by_node[meta["node_id"]], key=lambda g: (len(g), g))
                visible = ",".join(node_gpus)
                index = node_gpus.index(meta["gpu_ids"][0])
            args.append((info.world_rank, info.world_size, info.local_rank, info.local_world_size, info.node_rank,
                         master_addr, master_port, backend, backend_config.init_method, backend_config.timeout_s,
                         visible, index))
        worker_group.execute_per_rank(_setup_worker, args)

    def on_shutdown(self, worker_group, backend_config: TorchConfig) -> None:
        worker_group.execute(_shutdown_worker)
