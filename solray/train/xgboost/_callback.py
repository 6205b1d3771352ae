"""``RayTrainReportCallback`` for ``xgboost.train``: reports each round's evaluation
metrics and checkpoints the booster."""

from __future__ import annotations

import xgboost

from solray.train._internal.gbdt import ReportCallbackBase


class RayTrainReportCallback(ReportCallbackBase, xgboost.callback.TrainingCallback):
    """Pass to ``xgboost.train(callbacks=[...])`` inside a training function. Metrics are
    named ``<eval name>-<metric>`` (``train-logloss``, ``valid-logloss``)."""

    DEFAULT_FILENAME = "model.ubj"
    CHECKPOINT_NAME = "model.ubj"

    def __init__(self, metrics=None, filename: str | None = None, frequency: int = 0,
                 checkpoint_at_end: bool = True, results_postprocessing_fn=None):
        ReportCallbackBase.__init__(self, metrics, filename, frequency, checkpoint_at_end, results_postprocessing_fn)
        xgboost.callback.TrainingCallback.__init__(self)

    FRAMEWORK = "XGBoost"

    @classmethod
    def get_model(cls, checkpoint, filename: str = DEFAULT_FILENAME) -> xgboost.Booster:
        """The booster saved in ``checkpoint``."""

        def load(path: str) -> xgboost.Booster:
            booster = xgboost.Booster()
            booster.load_model(path)
            return booster

        return cls._load_from(checkpoint, filename, load)

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        flat = {f"{data}-{metric}": float(values[-1]) for data, by_metric in evals_log.items()
                for metric, values in by_metric.items()}
        self._report(self._select(flat), epoch, model, self._should_checkpoint(epoch))
        return False

    def after_training(self, model):
        last = model.num_boosted_rounds() - 1
        if self._checkpoint_at_end and self._last_checkpointed != last:
            self._report(self._last_metrics or {}, last, model, checkpoint=True)
        return model
