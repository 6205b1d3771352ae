"""Seed 002: a Tuner over an XGBoostTrainer, then the best checkpoint."""

from __future__ import annotations

import numpy as np

import solray
from solray import tune
from solray.train import RunConfig, ScalingConfig
from solray.train.xgboost import XGBoostTrainer
from solray.tune import TuneConfig, Tuner


def test_tuner_over_xgboost_trainer(ray_2_cpus, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((200, 3))
    items = [{"a": a, "b": b, "c": c, "is_big_tip": int(a + b > 1)} for a, b, c in x.tolist()]
    train_dataset, valid_dataset = solray.data.from_items(items).train_test_split(test_size=0.3)
    trainer = XGBoostTrainer(
        label_column="is_big_tip",
        scaling_config=ScalingConfig(num_workers=1),
        params={"objective": "binary:logistic", "eval_metric": ["logloss"]},
        datasets={"train": train_dataset, "valid": valid_dataset},
        num_boost_round=3,
        run_config=RunConfig(storage_path=str(tmp_path)),
    )
    tuner = Tuner(
        trainer,
        param_space={"params": {"max_depth": tune.randint(2, 12)}},
        tune_config=TuneConfig(num_samples=3, metric="valid-logloss", mode="min"),
        run_config=RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    grid = tuner.fit()
    assert len(grid) == 3 and grid.num_errors == 0, grid.errors
    assert all(2 <= r.config["params"]["max_depth"] < 12 for r in grid)
    best = grid.get_best_result()
    assert best.metrics["valid-logloss"] == min(r.metrics["valid-logloss"] for r in grid)
    checkpoint = best.checkpoint
    assert checkpoint is not None and checkpoint.path.startswith(best.path)
    booster = XGBoostTrainer.get_model(checkpoint)
    import xgboost

    rows = np.array([[0.9, 0.9, 0.5], [0.05, 0.05, 0.5]])
    predictions = booster.predict(xgboost.DMatrix(rows, feature_names=["a", "b", "c"]))
    assert predictions[0] > 0.5 > predictions[1]
