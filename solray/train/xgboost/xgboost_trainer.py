"""``XGBoostTrainer``: distributed ``xgboost.train`` over a worker group."""

from __future__ import annotations

from solray.train._internal.backend import checked_config
from solray.train._internal.gbdt import GBDTTrainer, seed_inputs
from solray.train.xgboost._callback import RayTrainReportCallback
from solray.train.xgboost.config import XGBoostConfig


class XGBoostTrainer(GBDTTrainer):
    """Two forms, as in Ray:

    - ``XGBoostTrainer(label_column=..., params=..., num_boost_round=..., datasets={"train":
      ds, "valid": ds2})`` trains on each worker's shards with XGBoost's collective and
      reports ``train-logloss``, ``valid-logloss``... each round;
    - ``XGBoostTrainer(train_loop_per_worker, train_loop_config=..., datasets=...)`` runs
      your function with the collective already set up.
    """

    _default_backend_config = XGBoostConfig

    def __init__(self, train_loop_per_worker=None, *, xgboost_config: XGBoostConfig | None = None, **kwargs):
        super().__init__(train_loop_per_worker, backend_config=checked_config(xgboost_config, XGBoostConfig,
                                                                              "xgboost_config"), **kwargs)

    @classmethod
    def get_model(cls, checkpoint, filename: str = RayTrainReportCallback.DEFAULT_FILENAME):
        """The ``xgboost.Booster`` saved in ``checkpoint``."""
        return RayTrainReportCallback.get_model(checkpoint, filename)

    @staticmethod
    def _seed_loop(config: dict) -> None:
        import xgboost

        params, frames, start_model = seed_inputs(config, "nthread", RayTrainReportCallback.get_model)
        evals = [(xgboost.DMatrix(features, label=labels), name) for name, (features, labels) in frames.items()]
        dtrain = next(d for d, name in evals if name == "train")
        rounds = config["num_boost_round"] - (start_model.num_boosted_rounds() if start_model else 0)
        callback = RayTrainReportCallback(frequency=config["frequency"], checkpoint_at_end=config["checkpoint_at_end"])
        if rounds <= 0:
            return
        xgboost.train(params, dtrain, num_boost_round=rounds, evals=evals, xgb_model=start_model,
                      callbacks=[callback], **config["train_kwargs"])
