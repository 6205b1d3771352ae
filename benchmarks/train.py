"""Train benchmarks on solray and Ray: trainer overhead over the same plain loop.

    .venv/bin/python benchmarks/train.py                  # both engines, one after the other
    RAYMOD=ray .venv-ray/bin/python benchmarks/train.py   # one engine only (prints JSON)
    .venv/bin/python benchmarks/train.py --quick          # smaller sizes

Workloads (each engine runs in its own process, never at the same time):

- ``torch``: TorchTrainer, 2 CPU workers, a fixed number of SGD steps of a small MLP with DDP;
  overhead = fit() wall - the same loop in plain single-process torch.
- ``first step``: time from ``fit()`` to the first training step of rank 0.
- ``xgboost``: XGBoostTrainer, 2 workers, 200k x 20 binary classification, 10 rounds, vs
  plain ``xgboost.train`` on the same frame with 2 threads; overhead = difference.

Both engines get ``init(num_cpus=3)``: Ray's trainer coordinator takes a CPU of its own, so
with 2 it would wait forever for two one-CPU workers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = {"solray": ROOT / ".venv", "ray": ROOT / ".venv-ray"}
ENGINE = os.environ.get("RAYMOD")


def _mlp_loop(config):
    """The training loop both the plain baseline and the trainers run (per worker)."""
    import torch
    import torch.nn as nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = config.get("_train_module")
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 1))
    if train is not None:
        model = train.torch.prepare_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    X = torch.randn(64, 32)
    y = torch.randn(64, 1)
    first = None
    for step in range(config["steps"]):
        if first is None:
            first = time.time()
        loss = nn.functional.mse_loss(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if train is not None and (step + 1) % config["report_every"] == 0:
            metrics = {"loss": loss.item(), "first_step": first}
            if step + 1 == config["steps"]:  # Ray's Result.metrics are those of the last checkpoint
                with tempfile.TemporaryDirectory() as d:
                    torch.save(model.state_dict(), os.path.join(d, "model.pt"))
                    train.report(metrics, checkpoint=train.Checkpoint.from_directory(d))
            else:
                train.report(metrics)
    return first


def _torch_worker(config):
    import importlib

    config = dict(config, _train_module=importlib.import_module(f"{config['engine']}.train"))
    importlib.import_module(f"{config['engine']}.train.torch")
    _mlp_loop(config)


def bench_torch(ray, engine: str, steps: int) -> dict:
    import importlib

    train = importlib.import_module(f"{engine}.train")
    torch_mod = importlib.import_module(f"{engine}.train.torch")
    config = {"steps": steps, "report_every": max(1, steps // 10), "engine": engine}
    t0 = time.perf_counter()
    _mlp_loop(config)
    plain = time.perf_counter() - t0
    storage = tempfile.mkdtemp(prefix="bench-train-")
    trainer = torch_mod.TorchTrainer(
        _torch_worker, train_loop_config=config,
        scaling_config=train.ScalingConfig(num_workers=2, use_gpu=False),
        run_config=train.RunConfig(storage_path=storage, name="bench"),
    )
    wall_start, t0 = time.time(), time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - t0
    if result.error is not None:
        raise result.error
    first_step = result.metrics["first_step"] - wall_start  # rank 0 reports when it started
    return {"torch plain loop s": plain, "torch trainer fit s": wall, "torch overhead s": wall - plain,
            "time to first step s": first_step}


def _xgboost_worker(config):
    import importlib

    import xgboost

    train = importlib.import_module(f"{config['engine']}.train")
    callback = importlib.import_module(f"{config['engine']}.train.xgboost").RayTrainReportCallback
    shard = train.get_dataset_shard("train").materialize().to_pandas()
    dtrain = xgboost.DMatrix(shard.drop(columns=["label"]), label=shard["label"])
    xgboost.train({**config["params"], "nthread": 1}, dtrain, num_boost_round=10, evals=[(dtrain, "train")],
                  verbose_eval=False, callbacks=[callback()])


def bench_xgboost(ray, engine: str, rows: int) -> dict:
    import importlib

    import numpy as np
    import pandas as pd
    import xgboost

    train = importlib.import_module(f"{engine}.train")
    xgb_mod = importlib.import_module(f"{engine}.train.xgboost")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 20)).astype(np.float32)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    df["label"] = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int32)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6}
    t0 = time.perf_counter()
    dtrain = xgboost.DMatrix(df.drop(columns=["label"]), label=df["label"])
    xgboost.train({**params, "nthread": 2}, dtrain, num_boost_round=10, evals=[(dtrain, "train")],
                  verbose_eval=False)
    plain = time.perf_counter() - t0
    dataset = ray.data.from_pandas(df)
    storage = tempfile.mkdtemp(prefix="bench-train-")
    # The loop form: Ray 2.60's XGBoostTrainer (Train V2) no longer takes label_column=.
    trainer = xgb_mod.XGBoostTrainer(
        _xgboost_worker, train_loop_config={"engine": engine, "params": params},
        datasets={"train": dataset}, scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(storage_path=storage, name="bench-xgb"),
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - t0
    if result.error is not None:
        raise result.error
    return {"xgboost plain s": plain, "xgboost trainer fit s": wall, "xgboost overhead s": wall - plain}


def run_engine(engine: str, quick: bool) -> dict:
    import importlib

    sys.path.insert(0, str(ROOT))
    ray = importlib.import_module(engine)
    importlib.import_module(f"{engine}.data")
    kwargs = {"num_cpus": 3}
    if engine == "ray":
        kwargs["include_dashboard"] = False
    ray.init(**kwargs)
    try:
        out = bench_torch(ray, engine, steps=200 if quick else 1000)
        out.update(bench_xgboost(ray, engine, rows=50_000 if quick else 200_000))
    finally:
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--json", help="(one-engine mode) write the results here")
    args = parser.parse_args()
    if ENGINE:
        results = run_engine(ENGINE, args.quick)
        text = json.dumps(results)
        if args.json:
            Path(args.json).write_text(text)
        print(text, flush=True)
        return
    results = {}
    for engine, venv in VENVS.items():
        python = venv / "bin" / "python"
        if not python.exists():
            print(f"# skipping {engine}: {python} not found", flush=True)
            continue
        out = Path(tempfile.mkdtemp()) / f"{engine}.json"
        cmd = [str(python), __file__, "--json", str(out)] + (["--quick"] if args.quick else [])
        print(f"# running {engine}", flush=True)
        proc = subprocess.run(cmd, env={**os.environ, "RAYMOD": engine, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not out.exists():
            print(f"# {engine} failed (rc={proc.returncode}):\n" + "\n".join(proc.stderr.splitlines()[-15:]))
            continue
        results[engine] = json.loads(out.read_text())
    names = sorted({k for r in results.values() for k in r}, key=lambda k: list(next(iter(results.values()))).index(k)
                   if k in next(iter(results.values())) else 99)
    print(f"{'metric':28s} {'solray':>10s} {'ray':>10s} {'solray/ray':>11s}")
    for name in names:
        s, r = results.get("solray", {}).get(name), results.get("ray", {}).get(name)
        ratio = f"{s / r:.2f}" if s is not None and r else "-"
        print(f"{name:28s} {'-' if s is None else f'{s:.2f}':>10} {'-' if r is None else f'{r:.2f}':>10} {ratio:>11s}")


if __name__ == "__main__":
    main()
