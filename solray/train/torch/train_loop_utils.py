"""Helpers a PyTorch training function calls on each worker: device placement, DDP/FSDP
wrapping, distributed data loaders, reproducibility."""

from __future__ import annotations

import os
import random
from typing import Any

import torch
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)

from solray.train.torch.config import _local_state


def _world() -> tuple[int, int]:
    from solray.air._internal import session

    s = session.current()
    if s is None or not hasattr(s, "get_context"):
        return 0, 1
    try:
        ctx = s.get_context()
        return ctx.get_world_rank(), ctx.get_world_size()
    except (NotImplementedError, AttributeError):
        return 0, 1


def get_device() -> torch.device:
    """This worker's device: its GPU with ``use_gpu=True``, else the CPU."""
    index = _local_state["device_index"]
    if index is not None:
        return torch.device("cuda", index)
    return torch.device("cpu")


def get_devices() -> list[torch.device]:
    return [get_device()]


def prepare_model(
    model: torch.nn.Module,
    move_to_device: bool | torch.device = True,
    parallel_strategy: str | None = "ddp",
    parallel_strategy_kwargs: dict[str, Any] | None = None,
    wrap_ddp: bool = True,
    ddp_kwargs: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """Move ``model`` to this worker's device and, with more than one worker, wrap it in
    ``DistributedDataParallel`` (``parallel_strategy="ddp"``) or
    ``FullyShardedDataParallel`` (``"fsdp"``)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"prepare_model expects a torch.nn.Module, got {type(model).__name__}")
    if parallel_strategy not in ("ddp", "fsdp", None):
        raise ValueError(f"prepare_model(parallel_strategy={parallel_strategy!r}): use 'ddp', 'fsdp' or None")
    device = move_to_device if isinstance(move_to_device, torch.device) else get_device()
    if move_to_device:
        model = model.to(device)
    _, world_size = _world()
    if world_size <= 1 or not wrap_ddp or parallel_strategy is None:
        return model
    kwargs = dict(parallel_strategy_kwargs or ddp_kwargs or {})
    on_gpu = device.type == "cuda"
    if parallel_strategy == "fsdp":
        if not on_gpu:  # FullyShardedDataParallel needs an accelerator; FSDP2 shards on CPU
            from torch.distributed.fsdp import fully_shard

            return fully_shard(model, **kwargs)
        from torch.distributed.fsdp import FullyShardedDataParallel

        kwargs.setdefault("device_id", device)
        return FullyShardedDataParallel(model, **kwargs)
    from torch.nn.parallel import DistributedDataParallel

    if on_gpu:
        kwargs.setdefault("device_ids", [device])
        kwargs.setdefault("output_device", device)
    return DistributedDataParallel(model, **kwargs)


class _DeviceDataLoader:
    """Iterates a DataLoader, moving each batch to the device; advances a
    DistributedSampler's epoch on each pass unless the caller set it."""

    def __init__(self, loader: DataLoader, device: torch.device):
        self._loader = loader
        self._device = device
        self._passes = 0
        self._epoch_set_by_us: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __len__(self) -> int:
        return len(self._loader)

    def _move(self, item: Any) -> Any:
        if isinstance(item, torch.Tensor):
            return item.to(self._device, non_blocking=True)
        if isinstance(item, dict):
            return {k: self._move(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)) and not hasattr(item, "_fields"):
            return type(item)(self._move(v) for v in item)
        return item

    def __iter__(self):
        sampler = getattr(self._loader, "sampler", None)
        if isinstance(sampler, DistributedSampler) and sampler.epoch == (self._epoch_set_by_us or 0):
            sampler.set_epoch(self._passes)
            self._epoch_set_by_us = self._passes
        self._passes += 1
        for batch in self._loader:
            yield self._move(batch)


def prepare_data_loader(
    data_loader: DataLoader,
    add_dist_sampler: bool = True,
    move_to_device: bool = True,
    auto_transfer: bool = True,
) -> DataLoader:
    """Give ``data_loader`` a ``DistributedSampler`` (each worker reads its part of the
    data; an existing DistributedSampler is kept) and move its batches to this worker's
    device."""
    if not isinstance(data_loader, DataLoader):
        raise TypeError(f"prepare_data_loader expects a torch DataLoader, got {type(data_loader).__name__}")
    rank, world_size = _world()
    if (
        add_dist_sampler
        and world_size > 1
        and not isinstance(data_loader.sampler, DistributedSampler)
        and not isinstance(data_loader.dataset, IterableDataset)
    ):
        shuffle = isinstance(data_loader.sampler, RandomSampler)
        if not isinstance(data_loader.sampler, (RandomSampler, SequentialSampler)):
            raise ValueError(
                f"prepare_data_loader: the DataLoader has a custom sampler ({type(data_loader.sampler).__name__}); "
                "give it a DistributedSampler yourself or pass add_dist_sampler=False"
            )
        loader_kwargs = {
            "batch_size": data_loader.batch_size,
            "num_workers": data_loader.num_workers,
            "collate_fn": data_loader.collate_fn,
            "pin_memory": data_loader.pin_memory,
            "drop_last": data_loader.drop_last,
            "timeout": data_loader.timeout,
            "worker_init_fn": data_loader.worker_init_fn,
            "generator": data_loader.generator,
            "sampler": DistributedSampler(data_loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle),
        }
        if data_loader.num_workers > 0:
            loader_kwargs["prefetch_factor"] = data_loader.prefetch_factor
            loader_kwargs["persistent_workers"] = data_loader.persistent_workers
        data_loader = DataLoader(data_loader.dataset, **loader_kwargs)
    if move_to_device and auto_transfer:
        return _DeviceDataLoader(data_loader, get_device())
    return data_loader


def enable_reproducibility(seed: int = 0) -> None:
    """Seed Python, NumPy and torch and make torch use deterministic algorithms."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    # cuBLAS needs this for deterministic results on CUDA >= 10.2.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def prepare_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Kept for Ray compatibility: optimizers need no change."""
    return optimizer


def backward(tensor: torch.Tensor) -> None:
    """Kept for Ray compatibility: ``tensor.backward()``."""
    tensor.backward()
