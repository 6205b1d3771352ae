"""LightGBM on solray.train (Ray's ``ray.train.lightgbm``)."""

from solray.train.lightgbm._callback import RayTrainReportCallback
from solray.train.lightgbm.config import LightGBMConfig, get_network_params
from solray.train.lightgbm.lightgbm_trainer import LightGBMTrainer

# solray's own name for the callback.
SolrayTrainReportCallback = RayTrainReportCallback

__all__ = [
    "LightGBMConfig",
    "LightGBMTrainer",
    "RayTrainReportCallback",
    "SolrayTrainReportCallback",
    "get_network_params",
]
