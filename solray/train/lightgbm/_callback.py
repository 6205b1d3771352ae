"""``RayTrainReportCallback`` for ``lightgbm.train``: reports each round's evaluation
metrics and checkpoints the booster."""

from __future__ import annotations

import lightgbm

from solray.train._internal.gbdt import ReportCallbackBase


class RayTrainReportCallback(ReportCallbackBase):
    """Pass to ``lightgbm.train(callbacks=[...])`` inside a training function. Metrics are
    named ``<valid name>-<metric>`` (``train-binary_logloss``, ``valid-binary_logloss``)."""

    DEFAULT_FILENAME = "model.txt"
    CHECKPOINT_NAME = "model.txt"
    order = 20  # after LightGBM's own callbacks (early stopping is 30: still sees our report)

    FRAMEWORK = "LightGBM"

    @classmethod
    def get_model(cls, checkpoint, filename: str = DEFAULT_FILENAME) -> lightgbm.Booster:
        """The booster saved in ``checkpoint``."""
        return cls._load_from(checkpoint, filename, lambda path: lightgbm.Booster(model_file=path))

    def __call__(self, env) -> None:
        flat = {f"{data}-{metric}": float(value) for data, metric, value, *_ in env.evaluation_result_list or []}
        last = env.iteration == env.end_iteration - 1
        checkpoint = self._should_checkpoint(env.iteration) or (last and self._checkpoint_at_end)
        self._report(self._select(flat), env.iteration, env.model, checkpoint)
