"""XGBoostTrainer and LightGBMTrainer: seed 002 as written (num_workers=2 on a 2-CPU
cluster), the train_loop_per_worker form, get_model, resuming, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import solray as ray
from solray.train import CheckpointConfig, RunConfig, ScalingConfig
from solray.train.lightgbm import LightGBMTrainer
from solray.train.xgboost import XGBoostTrainer


def _taxi_like(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=["fare", "distance", "hour", "passengers"])
    df["is_big_tip"] = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.3, size=n) > 0).astype(int)
    return df


def test_seed_002_xgboost_trainer_on_two_cpus(ray_2_cpus, storage):
    dataset = ray.data.from_pandas(_taxi_like())
    train_dataset, valid_dataset = dataset.train_test_split(test_size=0.3)
    trainer = XGBoostTrainer(
        label_column="is_big_tip",
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        params={"objective": "binary:logistic"},
        datasets={"train": train_dataset, "valid": valid_dataset},
        run_config=RunConfig(storage_path=storage),
    )
    result = trainer.fit()
    assert result.error is None, result.error
    df = result.metrics_dataframe
    assert {"train-logloss", "valid-logloss"} <= set(df.columns)
    assert df["train-logloss"].iloc[-1] < df["train-logloss"].iloc[0]
    booster = XGBoostTrainer.get_model(result.checkpoint)
    assert booster.num_boosted_rounds() == 10  # Ray's default num_boost_round
    # the two workers trained one model together: it scores the whole valid split like
    # the reported (allreduced) valid-logloss says
    valid = valid_dataset.to_pandas()
    import xgboost

    pred = booster.predict(xgboost.DMatrix(valid.drop(columns=["is_big_tip"])))
    eps = 1e-7
    y = valid["is_big_tip"].to_numpy()
    logloss = -np.mean(y * np.log(pred + eps) + (1 - y) * np.log(1 - pred + eps))
    assert abs(logloss - result.metrics["valid-logloss"]) < 0.05


def test_xgboost_loop_form_and_resume(ray_2_cpus, storage):
    import xgboost

    import solray.train as train
    from solray.train.xgboost import RayTrainReportCallback, SolrayTrainReportCallback

    assert SolrayTrainReportCallback is RayTrainReportCallback

    def loop(config):
        shard = train.get_dataset_shard("train").materialize().to_pandas()
        dtrain = xgboost.DMatrix(shard.drop(columns=["is_big_tip"]), label=shard["is_big_tip"])
        xgboost.train(config["params"], dtrain, num_boost_round=4, evals=[(dtrain, "train")],
                      callbacks=[RayTrainReportCallback(frequency=2, metrics=["train-error"])])

    result = XGBoostTrainer(
        loop, train_loop_config={"params": {"objective": "binary:logistic", "eval_metric": ["logloss", "error"]}},
        scaling_config=ScalingConfig(num_workers=2), datasets={"train": ray.data.from_pandas(_taxi_like(400))},
        run_config=RunConfig(storage_path=storage, verbose=0),
    ).fit()
    assert result.error is None, result.error
    assert set(result.metrics) >= {"train-error"} and "train-logloss" not in result.metrics
    assert [n for n in sorted(result.metrics_dataframe["checkpoint_dir_name"].dropna())] == [
        "checkpoint_000000", "checkpoint_000001"]  # frequency=2 over 4 rounds, none extra at the end
    # the seed form resumes boosting from a checkpoint: 4 rounds + 2 more
    more = XGBoostTrainer(
        label_column="is_big_tip", params={"objective": "binary:logistic"}, num_boost_round=6,
        datasets={"train": ray.data.from_pandas(_taxi_like(400))}, scaling_config=ScalingConfig(num_workers=1),
        resume_from_checkpoint=result.checkpoint, run_config=RunConfig(storage_path=storage, verbose=0),
    ).fit()
    assert more.error is None, more.error
    assert XGBoostTrainer.get_model(more.checkpoint).num_boosted_rounds() == 6
    assert len(more.metrics_dataframe) == 3  # rounds 5 and 6, then the final checkpoint


def test_lightgbm_both_forms(ray_2_cpus, storage):
    import lightgbm

    import solray.train as train
    from solray.train.lightgbm import RayTrainReportCallback, get_network_params

    data = ray.data.from_pandas(_taxi_like(800))
    train_ds, valid_ds = data.train_test_split(test_size=0.25)
    result = LightGBMTrainer(
        label_column="is_big_tip", params={"objective": "binary", "metric": "binary_logloss"},
        num_boost_round=5, datasets={"train": train_ds, "valid": valid_ds},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=storage, verbose=0,
                             checkpoint_config=CheckpointConfig(checkpoint_frequency=0)),
    ).fit()
    assert result.error is None, result.error
    assert {"train-binary_logloss", "valid-binary_logloss"} <= set(result.metrics)
    assert LightGBMTrainer.get_model(result.checkpoint).current_iteration() == 5

    def loop(config):
        shard = train.get_dataset_shard("train").materialize().to_pandas()
        params = {**config, **get_network_params()}
        ds = lightgbm.Dataset(shard.drop(columns=["is_big_tip"]), label=shard["is_big_tip"])
        lightgbm.train(params, ds, num_boost_round=3, valid_sets=[ds], valid_names=["train"],
                       callbacks=[RayTrainReportCallback()])
        train.report({"machines": params.get("num_machines", 1)})

    result = LightGBMTrainer(
        loop, train_loop_config={"objective": "binary", "verbose": -1, "num_threads": 1},
        datasets={"train": train_ds}, scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=storage, verbose=0),
    ).fit()
    assert result.error is None, result.error
    assert result.metrics["machines"] == 2
    assert "train-binary_logloss" in result.metrics_dataframe.columns


def test_gbdt_bad_input(tmp_path):
    from solray.train import Checkpoint

    with pytest.raises(FileNotFoundError, match=r"no model.ubj in .*XGBoost"):
        XGBoostTrainer.get_model(Checkpoint.from_directory(str(tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"no model.txt in .*LightGBM"):
        LightGBMTrainer.get_model(Checkpoint.from_directory(str(tmp_path)))
    ds = ray.data.from_pandas(_taxi_like(10)) if ray.is_initialized() else None
    with pytest.raises(ValueError, match="label_column"):
        XGBoostTrainer(params={}, datasets={})
    with pytest.raises(ValueError, match="'train' dataset"):
        XGBoostTrainer(label_column="y", datasets={})
    with pytest.raises(ValueError, match="num_boost_round"):
        LightGBMTrainer(label_column="y", num_boost_round=0, datasets={"train": ds})
    with pytest.raises(ValueError, match="not both"):
        XGBoostTrainer(lambda: None, label_column="y")
    with pytest.raises(TypeError, match="xgboost_config"):
        XGBoostTrainer(lambda: None, xgboost_config={})


def test_missing_label_column_is_reported(ray_2_cpus, storage):
    result = XGBoostTrainer(
        label_column="nope", params={"objective": "binary:logistic"},
        datasets={"train": ray.data.from_pandas(_taxi_like(50))}, scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(storage_path=storage, verbose=0),
    ).fit()
    assert result.error is not None and "label_column='nope' is not a column" in str(result.error)
