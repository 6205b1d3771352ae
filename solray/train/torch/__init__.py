"""PyTorch on solray.train (Ray's ``ray.train.torch``)."""

from solray.train.torch.config import TorchConfig
from solray.train.torch.torch_trainer import TorchTrainer
from solray.train.torch.train_loop_utils import (
    backward,
    enable_reproducibility,
    get_device,
    get_devices,
    prepare_data_loader,
    prepare_model,
    prepare_optimizer,
)

__all__ = [
    "TorchConfig",
    "TorchTrainer",
    "backward",
    "enable_reproducibility",
    "get_device",
    "get_devices",
    "prepare_data_loader",
    "prepare_model",
    "prepare_optimizer",
]
