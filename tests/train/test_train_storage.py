"""Checkpoints, run storage and results, without a cluster: local paths, file:// URIs and a
pyarrow SubTreeFileSystem."""

from __future__ import annotations

import json
import os

import pyarrow.fs as pafs
import pytest

from solray.air._internal.storage import StorageContext
from solray.air.config import CheckpointConfig
from solray.air.result import Result
from solray.train import Checkpoint
from solray.train._internal.checkpoint_manager import CheckpointManager


def _make_dir(path, files):
    os.makedirs(path, exist_ok=True)
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return str(path)


def test_checkpoint_directory_round_trip_and_metadata(tmp_path):
    src = _make_dir(tmp_path / "src", {"model.pt": "weights", "sub/extra.txt": "x"})
    ckpt = Checkpoint.from_directory(src)
    assert ckpt.path == src and isinstance(ckpt.filesystem, pafs.LocalFileSystem)
    ckpt.set_metadata({"epoch": 3})
    ckpt.update_metadata({"loss": 0.5})
    assert ckpt.get_metadata() == {"epoch": 3, "loss": 0.5}
    out = ckpt.to_directory(str(tmp_path / "out"))
    assert open(os.path.join(out, "sub/extra.txt")).read() == "x"
    with ckpt.as_directory() as d:
        assert open(os.path.join(d, "model.pt")).read() == "weights"
    with pytest.raises(FileNotFoundError, match="not a directory"):
        Checkpoint.from_directory(str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="JSON"):
        ckpt.set_metadata({"bad": object()})


def test_checkpoint_from_uri_downloads_for_as_directory(tmp_path):
    src = _make_dir(tmp_path / "remote", {"w.bin": "abc"})
    ckpt = Checkpoint(f"file://{src}")
    assert ckpt.path == src
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    remote = Checkpoint("remote", filesystem=sub)  # not a LocalFileSystem: copied on use
    with remote.as_directory() as d:
        assert d != src and open(os.path.join(d, "w.bin")).read() == "abc"
    assert not os.path.exists(d)
    assert remote.get_metadata() == {}


@pytest.mark.parametrize("kind", ["local", "uri", "subtree"])
def test_storage_persists_lists_and_logs(tmp_path, kind):
    base = tmp_path / "store"
    base.mkdir()
    if kind == "local":
        storage = StorageContext(str(base), "exp")
    elif kind == "uri":
        storage = StorageContext(f"file://{base}", "exp")
    else:
        storage = StorageContext("", "exp", storage_filesystem=pafs.SubTreeFileSystem(str(base), pafs.LocalFileSystem()))
    src = Checkpoint.from_directory(_make_dir(tmp_path / "ck", {"m": "1"}))
    first = storage.persist_checkpoint(src)
    second = storage.persist_checkpoint(src)
    assert [i for i, _ in storage.list_checkpoints()] == [0, 1]
    assert os.path.basename(second.path) == "checkpoint_000001" and first != second
    storage.write_result({"loss": 1.0, "nested": {"a": 2}, "training_iteration": 1})
    storage.write_result({"loss": 0.5, "nested": {"a": 3}, "training_iteration": 2})
    storage.close()
    run = base / "exp"
    assert open(run / "checkpoint_000001" / "m").read() == "1"
    rows = [json.loads(line) for line in open(run / "result.json")]
    assert [r["loss"] for r in rows] == [1.0, 0.5]
    assert open(run / "progress.csv").read().splitlines()[0].split(",") == ["loss", "nested/a", "training_iteration"]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run))


def test_partial_upload_is_never_listed(tmp_path):
    storage = StorageContext(str(tmp_path), "exp")
    src = Checkpoint.from_directory(_make_dir(tmp_path / "ck", {"m": "1"}))
    staged = storage.stage_checkpoint(src)  # uploaded, then the worker "crashed"
    # a folder with the final name but no completion marker (crash while copying to an
    # object store) does not count either
    _make_dir(os.path.join(storage.run_fs_path, "checkpoint_000000"), {"half": ""})
    assert storage.list_checkpoints() == [] and storage.latest_checkpoint() is None
    committed = storage.commit_checkpoint([staged], storage.next_checkpoint_index())
    assert os.path.basename(committed.path) == "checkpoint_000000"
    assert os.listdir(committed.path) and "half" not in os.listdir(committed.path)
    storage.stage_checkpoint(src)
    storage.clean_staged()
    assert [n for n in os.listdir(storage.run_fs_path) if n.startswith(".tmp")] == []


def test_result_from_path_and_repr(tmp_path):
    storage = StorageContext(str(tmp_path), "run")
    src = Checkpoint.from_directory(_make_dir(tmp_path / "ck", {"m": "1"}))
    ck = storage.persist_checkpoint(src)
    storage.write_params({"train_loop_config": {"lr": 0.1}})
    storage.write_result({"loss": 0.3, "training_iteration": 1, "checkpoint_dir_name": "checkpoint_000000"})
    storage.write_error(ValueError("boom"))
    storage.close()
    result = Result.from_path(storage.run_fs_path)
    assert result.metrics["loss"] == 0.3
    assert result.checkpoint == ck
    assert result.best_checkpoints == [(ck, result.metrics)]
    assert list(result.metrics_dataframe["loss"]) == [0.3]
    assert result.config == {"train_loop_config": {"lr": 0.1}}
    assert isinstance(result.error, ValueError) and str(result.error) == "boom"
    assert "loss" in repr(result) and "ValueError" in repr(result)
    with pytest.raises(FileNotFoundError):
        Result.from_path(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("config", "scores", "kept"),
    [
        (CheckpointConfig(num_to_keep=2), [1, 2, 3, 4], [3, 4]),
        (CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="acc"), [5, 9, 1, 2], [9, 2]),
        (CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="acc", checkpoint_score_order="min"),
         [5, 1, 7], [7]),
        (CheckpointConfig(), [1, 2, 3], [1, 2, 3]),
    ],
)
def test_checkpoint_manager_keeps_best_and_latest(tmp_path, config, scores, kept):
    storage = StorageContext(str(tmp_path), "run")
    src = Checkpoint.from_directory(_make_dir(tmp_path / "ck", {"m": "1"}))
    manager = CheckpointManager(config, storage)
    for score in scores:
        manager.register(storage.persist_checkpoint(src), {"acc": score})
    assert [m["acc"] for _, m in manager.best_checkpoints()] == kept
    assert len(storage.list_checkpoints()) == len(kept)  # the others are deleted from storage
    with pytest.raises(KeyError, match="checkpoint_score_attribute"):
        CheckpointManager(CheckpointConfig(checkpoint_score_attribute="acc"), storage).register(src, {"loss": 1})
