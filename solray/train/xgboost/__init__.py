"""XGBoost on solray.train (Ray's ``ray.train.xgboost``)."""

from solray.train.xgboost._callback import RayTrainReportCallback
from solray.train.xgboost.config import XGBoostConfig
from solray.train.xgboost.xgboost_trainer import XGBoostTrainer

# solray's own name for the callback.
SolrayTrainReportCallback = RayTrainReportCallback

__all__ = ["RayTrainReportCallback", "SolrayTrainReportCallback", "XGBoostConfig", "XGBoostTrainer"]
