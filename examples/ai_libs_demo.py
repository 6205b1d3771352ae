"""The main job: seed 002's lesson 1 end to end on an embedded local cluster.

Data reads a taxi-like Parquet dataset (generated here: no network), Train fits an
XGBoost model on two workers, Tune searches its depth, a callable class predicts offline
over the validation set with ``map_batches(concurrency=2)``, and Serve answers the same
question online over HTTP. Each stage prints its result and its time. Written against
Ray's API: it runs on Ray with ``import ray`` in place of ``import solray as ray``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from starlette.requests import Request

import solray as ray
from solray import serve, tune
from solray.train import RunConfig, ScalingConfig
from solray.train.xgboost import XGBoostTrainer
from solray.tune import TuneConfig, Tuner

FEATURES = ["passenger_count", "trip_distance", "fare_amount", "trip_duration", "hour", "day_of_week"]
LABEL = "is_big_tip"


def make_taxi_parquet(path: str, rows: int = 20_000, seed: int = 0) -> None:
    """Trips whose tip is 'big' (over 20% of the fare) more often when fares are high,
    trips short and it is late: a signal a tree model can learn."""
    rng = np.random.default_rng(seed)
    distance = rng.gamma(2.0, 1.5, rows)
    duration = distance * rng.uniform(2.0, 5.0, rows) + rng.exponential(3.0, rows)
    fare = 3.0 + 2.5 * distance + 0.3 * duration + rng.normal(0, 1.0, rows)
    hour = rng.integers(0, 24, rows)
    score = 0.08 * fare - 0.05 * duration + 0.6 * ((hour >= 20) | (hour <= 3)) + rng.normal(0, 0.7, rows)
    table = pa.table({
        "passenger_count": rng.integers(1, 5, rows).astype(np.float64),
        "trip_distance": distance,
        "fare_amount": fare,
        "trip_duration": duration,
        "hour": hour.astype(np.float64),
        "day_of_week": rng.integers(0, 7, rows).astype(np.float64),
        LABEL: (score > np.median(score)).astype(np.int64),
    })
    pq.write_table(table, path)


class OfflinePredictor:
    """Loads the model once per actor; predicts a batch at a time."""

    def __init__(self, checkpoint):
        self.model = XGBoostTrainer.get_model(checkpoint)

    def __call__(self, batch: dict) -> dict:
        import xgboost

        matrix = xgboost.DMatrix(pd.DataFrame({f: batch[f] for f in FEATURES}))
        return {"predictions": self.model.predict(matrix)}


@serve.deployment
class OnlinePredictor:
    def __init__(self, checkpoint):
        self.model = XGBoostTrainer.get_model(checkpoint)

    async def __call__(self, request: Request) -> dict:
        data = await request.json()  # the seed sends a DataFrame's JSON as a JSON string
        records = json.loads(data) if isinstance(data, str) else data
        return {"predictions": self.predict(records)}

    def predict(self, data: list[dict]) -> list[float]:
        import xgboost

        frame = pd.DataFrame(data)[FEATURES]
        return [round(float(p), 4) for p in self.model.predict(xgboost.DMatrix(frame))]


def stage(name: str, started: float) -> float:
    now = time.perf_counter()
    print(f"  [{now - started:5.2f} s] {name}")
    return now


def main() -> None:
    t0 = time.perf_counter()
    ctx = ray.init()
    print(f"solray {ray.__version__}: local cluster up in {time.perf_counter() - t0:.2f} s; dashboard {ctx.dashboard_url}")
    storage = tempfile.mkdtemp(prefix="solray-demo-")
    path = os.path.join(storage, "nyc_taxi_like.parquet")
    make_taxi_parquet(path)
    t = time.perf_counter()

    dataset = ray.data.read_parquet(path)
    train_dataset, valid_dataset = dataset.train_test_split(test_size=0.3)
    t = stage(f"Data: {dataset.count()} trips read, {train_dataset.count()} to train, "
              f"{valid_dataset.count()} to validate", t)

    trainer = XGBoostTrainer(
        label_column=LABEL,
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        params={"objective": "binary:logistic", "eval_metric": ["logloss", "error"]},
        datasets={"train": train_dataset, "valid": valid_dataset},
        run_config=RunConfig(storage_path=storage, name="xgboost"),
        num_boost_round=20,
    )
    result = trainer.fit()
    t = stage(f"Train: valid-logloss {result.metrics['valid-logloss']:.4f}, "
              f"valid-error {result.metrics['valid-error']:.4f}", t)

    tuner = Tuner(
        trainer,
        param_space={"params": {"max_depth": tune.randint(2, 12)}},
        tune_config=TuneConfig(num_samples=3, metric="valid-logloss", mode="min"),
        run_config=RunConfig(storage_path=storage, name="tune"),
    )
    best = tuner.fit().get_best_result()
    checkpoint = best.checkpoint
    t = stage(f"Tune: best max_depth={best.config['params']['max_depth']} "
              f"valid-logloss {best.metrics['valid-logloss']:.4f} of 3 trials", t)

    valid_inputs = valid_dataset.drop_columns([LABEL])
    predictions = valid_inputs.map_batches(OfflinePredictor, fn_constructor_kwargs={"checkpoint": checkpoint},
                                           concurrency=2)
    batch = predictions.take_batch(5)
    t = stage(f"Offline prediction (2 actors): first probabilities {[round(float(p), 3) for p in batch['predictions']]}", t)

    serve.run(OnlinePredictor.bind(checkpoint=checkpoint))
    sample_batch = valid_inputs.take_batch(1)
    data = pd.DataFrame(sample_batch).to_json(orient="records")
    answer = requests.post("http://localhost:8000/", json=data, timeout=30).json()
    t = stage(f"Online prediction over HTTP (Serve): {answer}", t)

    serve.shutdown()
    ray.shutdown()
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
