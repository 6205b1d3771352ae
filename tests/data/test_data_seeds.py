"""The Data programs from the seed notes (000, 002, 004), run as written with ``import solray as ray``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import solray as ray


def _taxi(path, rows=200):
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({
        "trip_distance": rng.random(rows) * 10,
        "fare_amount": rng.random(rows) * 50,
        "is_big_tip": rng.integers(0, 2, rows),
    }), path)


class OfflinePredictor:
    def __init__(self):
        # Load expensive state once per actor.
        self.weights = np.array([0.1, 0.02])

    def __call__(self, batch):
        x = np.stack([batch["trip_distance"], batch["fare_amount"]], axis=1)
        return {"probability": 1 / (1 + np.exp(-(x @ self.weights)))}


def test_seed_002_offline_prediction(ray_data, tmp_path):
    path = str(tmp_path / "nyc_taxi_2021.parquet")
    _taxi(path)
    dataset = ray.data.read_parquet(path)
    train_dataset, valid_dataset = dataset.train_test_split(test_size=0.3)
    assert (train_dataset.count(), valid_dataset.count()) == (140, 60)
    valid_dataset_inputs = valid_dataset.drop_columns(["is_big_tip"])
    predicted_probabilities = valid_dataset_inputs.map_batches(OfflinePredictor, concurrency=2)
    batch = predicted_probabilities.take_batch()
    assert set(batch) == {"probability"} and len(batch["probability"]) == 20
    sample_batch = valid_dataset_inputs.take_batch(1)
    data = pd.DataFrame(sample_batch).to_json(orient="records")
    assert '"trip_distance"' in data


def test_seed_000_map_batches_and_shuffles(ray_data):
    def normalize(batch):
        x = batch["id"].astype(np.float64)
        return {"x": (x - x.mean()) / (x.std() + 1e-9)}

    ds = ray.data.range(1000)
    ds_normalized = ds.map_batches(normalize, batch_size=32, num_cpus=1, memory=100 * 1024**2)
    assert ds_normalized.count() == 1000
    assert ds.map_batches(normalize, batch_format="numpy", batch_size=1024).count() == 1000
    assert ds.randomize_block_order().count() == 1000
    assert sorted(r["id"] for r in ds.random_shuffle().take_all()) == list(range(1000))
    counts = ds.repartition(8).map(lambda r: {"k": r["id"] % 4}).groupby("k").count().take_all()
    assert [c["count()"] for c in counts] == [250] * 4
    assert ds.sum("id") == sum(range(1000)) and ds.min("id") == 0
    assert ds.materialize().num_blocks() >= 1


def test_seed_004_row_transform_on_images(ray_data, tmp_path):
    images = np.random.default_rng(0).integers(0, 255, size=(16, 3, 8, 8), dtype=np.uint8)
    table = pa.table({"image": ray.data._internal.block.column_to_arrow(images), "label": np.arange(16) % 10})
    pq.write_table(table, str(tmp_path / "train.parquet"))
    train_dataset = ray.data.read_parquet(str(tmp_path))
    assert train_dataset.schema().names == ["image", "label"]

    def transform_cifar(row):
        row["image"] = (row["image"].astype(np.float32) / 255.0 - 0.5) / 0.5
        return row

    train_dataset = train_dataset.map(transform_cifar)
    shard = train_dataset.streaming_split(1)[0]
    batches = list(shard.iter_batches(batch_size=8))
    assert [b["image"].shape for b in batches] == [(8, 3, 8, 8), (8, 3, 8, 8)]
    assert batches[0]["image"].dtype == np.float32 and float(batches[0]["image"].max()) <= 1.0


def test_breaking_out_of_iteration_stops_execution(ray_data):
    ds = ray.data.range(10_000, override_num_blocks=50).map_batches(lambda b: b)
    for _ in ds.iter_batches(batch_size=10):
        break
    first = next(iter(ds.iter_batches(batch_size=5)))
    assert first["id"].tolist() == [0, 1, 2, 3, 4]
    assert ds.count() == 10_000
