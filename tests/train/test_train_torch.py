"""TorchTrainer: seeds 003/004 as written (use_gpu=False), DDP/FSDP, data loaders, Data
shards, and the GPU path when a GPU exists."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import solray as ray
import solray.train
import solray.train.torch
from solray.train import RunConfig, ScalingConfig
from solray.train.torch import TorchTrainer

torch.set_num_threads(1)


def _seed_003_train_func(config):
    """Seed 003's training function shape: prepare_model, prepare_data_loader, set_epoch,
    report with a checkpoint from a temporary directory."""
    lr, num_epochs = config["lr"], config["num_epochs"]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model = ray.train.torch.prepare_model(model)
    X = torch.randn(128, 4, generator=torch.Generator().manual_seed(1))
    y = X.sum(1, keepdim=True)
    worker_batch_size = 16
    data_loader = DataLoader(TensorDataset(X, y), batch_size=worker_batch_size, shuffle=True)
    data_loader = ray.train.torch.prepare_data_loader(data_loader)
    kept = ray.train.torch.prepare_data_loader(
        DataLoader(TensorDataset(X, y), batch_size=8, sampler=DistributedSampler(TensorDataset(X, y), 2, 0)))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    ctx = ray.train.get_context()
    for epoch in range(num_epochs):
        if ray.train.get_context().get_world_size() > 1:
            data_loader.sampler.set_epoch(epoch)
        for X_, y_ in data_loader:
            loss = nn.functional.mse_loss(model(X_), y_)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            torch.save(model.module.state_dict(), os.path.join(temp_checkpoint_dir, "model.pt"))
            metrics = {"loss": loss.item(), "epoch": epoch}
            checkpoint = ray.train.Checkpoint.from_directory(temp_checkpoint_dir)
            ray.train.report(metrics=metrics, checkpoint=checkpoint if ctx.get_world_rank() == 0 else None)
        if ray.train.get_context().get_world_rank() == 0:
            print({"epoch_num": epoch, "loss": loss.item()})
    # DDP kept the replicas identical: gather rank 1's weights on every rank and compare
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    torch.distributed.all_gather(gathered, flat)
    facts = {
        "ddp": type(model).__name__,
        "backend": torch.distributed.get_backend(),
        "env": [os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")],
        "sampler": type(data_loader.sampler).__name__,
        "batches": len(data_loader),
        "kept_sampler_is_mine": kept.sampler.num_replicas == 2 and kept.sampler.rank == 0,
        "same_weights": bool(torch.equal(gathered[0], gathered[1])),
        "device": str(ray.train.torch.get_device()),
    }
    ray.train.report({"facts": str(facts)})


def test_seed_003_torch_trainer(ray_2_cpus, storage, capfd):
    scaling_config = ScalingConfig(num_workers=2, use_gpu=False)
    run_config = RunConfig(storage_path=storage, name="unique_run_name")
    trainer = ray.train.torch.TorchTrainer(
        _seed_003_train_func, train_loop_config={"lr": 1e-2, "num_epochs": 3},
        scaling_config=scaling_config, run_config=run_config)
    result = trainer.fit()
    assert result.error is None, result.error
    facts = eval(result.metrics["facts"])  # noqa: S307 - our own repr
    assert facts["ddp"] == "DistributedDataParallel" and facts["backend"] == "gloo"
    assert facts["env"][:3] == ["0", "2", "0"] and facts["env"][3] and int(facts["env"][4]) > 0
    assert facts["sampler"] == "DistributedSampler" and facts["batches"] == 4  # 128 rows / 2 workers / 16
    assert facts["kept_sampler_is_mine"] and facts["same_weights"] and facts["device"] == "cpu"
    df = result.metrics_dataframe
    assert list(df["epoch"].dropna()) == [0, 1, 2]
    state = torch.load(os.path.join(result.checkpoint.path, "model.pt"))
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert "rank=0) {'epoch_num': 2" in capfd.readouterr().out


def test_seed_004_data_shards_and_fsdp(ray_2_cpus, storage):
    """Seed 004: datasets= with get_dataset_shard + iter_torch_batches; and FSDP."""
    rows = 200
    ds = ray.data.from_numpy(np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)).map_batches(
        lambda b: {"image": b["data"], "label": (b["data"][:, 0] % 2).astype(np.int64)})
    valid = ray.data.range(40).map_batches(lambda b: {"image": np.ones((len(b["id"]), 3), np.float32),
                                                      "label": np.zeros(len(b["id"]), np.int64)})

    def train_func_per_worker(config):
        train_data_shard = ray.train.get_dataset_shard("train")
        valid_data_shard = ray.train.get_dataset_shard("valid")
        model = ray.train.torch.prepare_model(nn.Linear(3, 2), parallel_strategy="fsdp")
        opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
        seen = 0
        for _epoch in range(config["epochs"]):
            for batch in train_data_shard.iter_torch_batches(batch_size=config["batch_size_per_worker"]):
                X, y = batch["image"], batch["label"]
                loss = nn.functional.cross_entropy(model(X), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                seen += len(y)
            n_valid = sum(len(b["label"]) for b in valid_data_shard.iter_torch_batches(batch_size=8))
            ray.train.report(metrics={"loss": loss.item(), "seen": seen, "valid_rows": n_valid,
                                      "model": type(model).__name__})

    trainer = TorchTrainer(
        train_loop_per_worker=train_func_per_worker,
        datasets={"train": ds, "valid": valid},
        train_loop_config={"lr": 1e-3, "epochs": 2, "batch_size_per_worker": 32},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(storage_path=storage, name="train_data_run", verbose=0),
    )
    result = trainer.fit()
    assert result.error is None, result.error
    # each worker saw half of the rows per epoch; valid was split too
    assert result.metrics["seen"] == rows and result.metrics["valid_rows"] == 20
    assert "FSDP" in result.metrics["model"] or result.metrics["model"] == "FullyShardedDataParallel"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CI machine has none)")
def test_gpu_workers_use_nccl_and_their_own_device(storage):
    ray.init(num_gpus=torch.cuda.device_count())
    try:
        def loop():
            model = ray.train.torch.prepare_model(nn.Linear(2, 1))
            out = model(torch.ones(1, 2, device=ray.train.torch.get_device()))
            ray.train.report({"backend": torch.distributed.get_backend() if torch.distributed.is_initialized()
                              else "none", "device": str(out.device),
                              "visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")})

        n = min(2, torch.cuda.device_count())
        result = TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=n, use_gpu=True),
                              run_config=RunConfig(storage_path=storage, verbose=0)).fit()
        assert result.error is None, result.error
        assert result.metrics["device"].startswith("cuda")
        assert result.metrics["visible"] != ""
        if n > 1:
            assert result.metrics["backend"] == "nccl"
    finally:
        ray.shutdown()


def test_enable_reproducibility_seeds_everything():
    import random

    try:
        ray.train.torch.enable_reproducibility(seed=7)
        a = (random.random(), np.random.rand(), torch.rand(1).item())
        ray.train.torch.enable_reproducibility(seed=7)
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    with pytest.raises(ValueError, match="parallel_strategy"):
        ray.train.torch.prepare_model(nn.Linear(1, 1), parallel_strategy="zero3")
    with pytest.raises(TypeError, match="DataLoader"):
        ray.train.torch.prepare_data_loader([1, 2])
    assert str(ray.train.torch.get_device()) == "cpu"
