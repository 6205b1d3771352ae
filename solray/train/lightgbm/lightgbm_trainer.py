"""``LightGBMTrainer``: distributed ``lightgbm.train`` over a worker group."""

from __future__ import annotations

from solray.train._internal.backend import checked_config
from solray.train._internal.gbdt import GBDTTrainer, seed_inputs
from solray.train.lightgbm._callback import RayTrainReportCallback
from solray.train.lightgbm.config import LightGBMConfig, get_network_params


class LightGBMTrainer(GBDTTrainer):
    """Two forms, as in Ray:

    - ``LightGBMTrainer(label_column=..., params=..., num_boost_round=..., datasets={"train":
      ds, "valid": ds2})`` trains on each worker's shards over LightGBM's network and
      reports ``train-<metric>``, ``valid-<metric>`` each round;
    - ``LightGBMTrainer(train_loop_per_worker, ...)``: merge
      ``solray.train.lightgbm.get_network_params()`` into your ``params``.
    """

    _default_backend_config = LightGBMConfig

    def __init__(self, train_loop_per_worker=None, *, lightgbm_config: LightGBMConfig | None = None, **kwargs):
        super().__init__(train_loop_per_worker, backend_config=checked_config(lightgbm_config, LightGBMConfig,
                                                                              "lightgbm_config"), **kwargs)

    @classmethod
    def get_model(cls, checkpoint, filename: str = RayTrainReportCallback.DEFAULT_FILENAME):
        """The ``lightgbm.Booster`` saved in ``checkpoint``."""
        return RayTrainReportCallback.get_model(checkpoint, filename)

    @staticmethod
    def _seed_loop(config: dict) -> None:
        import lightgbm

        params, frames, init_model = seed_inputs(config, "num_threads", RayTrainReportCallback.get_model)
        params = {**params, **get_network_params()}
        params.setdefault("verbose", -1)
        sets = {name: lightgbm.Dataset(features, label=labels, free_raw_data=False)
                for name, (features, labels) in frames.items()}
        train_set = sets["train"]
        valid_names = list(sets)
        valid_sets = [sets[n] if n == "train" else sets[n].set_reference(train_set) for n in valid_names]
        rounds = config["num_boost_round"] - (init_model.current_iteration() if init_model else 0)
        if rounds <= 0:
            return
        callback = RayTrainReportCallback(frequency=config["frequency"], checkpoint_at_end=config["checkpoint_at_end"])
        lightgbm.train(params, train_set, num_boost_round=rounds, valid_sets=valid_sets, valid_names=valid_names,
                       init_model=init_model, callbacks=[callback], **config["train_kwargs"])
