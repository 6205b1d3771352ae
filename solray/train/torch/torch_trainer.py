"""``TorchTrainer``: a DataParallelTrainer whose workers join one torch.distributed group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solray.train._internal.backend import checked_config
from solray.train.data_parallel_trainer import DataParallelTrainer
from solray.train.torch.config import TorchConfig


class TorchTrainer(DataParallelTrainer):
    """Runs ``train_loop_per_worker`` on ``scaling_config.num_workers`` workers with
    torch.distributed initialised (gloo on CPU, NCCL with ``use_gpu=True``);
    ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are set.

    Other keyword arguments are DataParallelTrainer's: ``train_loop_config``,
    ``scaling_config``, ``run_config``, ``datasets``, ``dataset_config``, ``metadata``,
    ``resume_from_checkpoint``.
    """

    _default_backend_config = TorchConfig

    def __init__(self, train_loop_per_worker: Callable, *, torch_config: TorchConfig | None = None, **kwargs: Any):
        super().__init__(train_loop_per_worker,
                         backend_config=checked_config(torch_config, TorchConfig, "torch_config"), **kwargs)
