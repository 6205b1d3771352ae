"""Tune benchmarks on solray and Ray, one engine after the other, side by side.

    .venv/bin/python benchmarks/tune.py                    # both engines (Ray if .venv-ray exists)
    .venv/bin/python benchmarks/tune.py --only asha        # one workload
    RAYMOD=ray RAY_TRAIN_V2_ENABLED=0 .venv-ray/bin/python benchmarks/tune.py --engine-only --json /tmp/ray.json

Workloads: 100 trials x 10 iterations of a trivial function trainable (wall time and
trials/s), a 50-trial ASHA run (max_t=20), and a Tuner over an XGBoostTrainer with 3
samples (num_workers=1). Each runs on a fresh ``init(num_cpus=N)`` after one untimed warm-up
trial, with progress output off.
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
ENGINE = os.environ.get("RAYMOD", "solray")
HIGHER_IS_BETTER = {"/s": True, "s": False}


# --- workloads (module level: both engines ship them to workers by reference) ---------------


def trivial(config):
    from importlib import import_module

    tune = import_module(f"{os.environ.get('RAYMOD', 'solray')}.tune")
    for i in range(10):
        tune.report({"score": config["x"] * i})


def curve(config):
    from importlib import import_module

    tune = import_module(f"{os.environ.get('RAYMOD', 'solray')}.tune")
    for i in range(1, 21):
        tune.report({"loss": config["a"] / i})


def run_engine(only: str | None, num_cpus: int) -> dict[str, tuple[float, str]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _engine import import_engine

    ray = import_engine(ENGINE)
    tune = import_engine(f"{ENGINE}.tune")
    run_config_cls = getattr(tune, "RunConfig", None) or import_engine(f"{ENGINE}.train").RunConfig
    storage = tempfile.mkdtemp(prefix="tune-bench-")
    results: dict[str, tuple[float, str]] = {}

    def record(name: str, value: float, unit: str) -> None:
        results[name] = (value, unit)
        print(f"{name:<44} {value:>12,.2f} {unit}", flush=True)

    def run_config(name):
        return run_config_cls(name=name, storage_path=storage, verbose=0)

    init = {"num_cpus": num_cpus}
    if ENGINE == "ray":
        init["include_dashboard"] = False
    ray.init(**init)
    try:
        tune.Tuner(trivial, param_space={"x": 1}, run_config=run_config("warmup")).fit()
        def timed_fit(label: str, trainable, space: dict, tune_config) -> None:
            start = time.perf_counter()
            grid = tune.Tuner(trainable, param_space=space, tune_config=tune_config,
                              run_config=run_config(label.split()[1])).fit()
            wall = time.perf_counter() - start
            assert len(grid) == tune_config.num_samples and not grid.errors, grid.errors
            record(f"{label} wall", wall, "s")
            record(f"{label} trials/s", tune_config.num_samples / wall, "/s")

        if only is None or "100" in only or "trials" in only:
            timed_fit("tune 100 trials x 10 iters", trivial, {"x": tune.uniform(0, 1)},
                      tune.TuneConfig(num_samples=100, metric="score", mode="max"))
        if only is None or "asha" in only:
            asha = import_engine(f"{ENGINE}.tune.schedulers").ASHAScheduler(
                max_t=20, grace_period=2, reduction_factor=3)
            timed_fit("tune 50-trial ASHA", curve, {"a": tune.uniform(0, 10)},
                      tune.TuneConfig(num_samples=50, metric="loss", mode="min", scheduler=asha))
        if only is None or "xgboost" in only:
            record("tune XGBoostTrainer 3 samples wall", xgboost_tuner(ray, tune, storage), "s")
    finally:
        ray.shutdown()
    return results


def xgboost_loop(config):
    """XGBoost on this worker's shards, reporting each round (Ray 2.60's XGBoostTrainer only
    takes a training loop, so both engines run this same one)."""
    from importlib import import_module

    import xgboost

    engine = os.environ.get("RAYMOD", "solray")
    train = import_module(f"{engine}.train")
    callback = import_module(f"{engine}.train.xgboost").RayTrainReportCallback
    frames = {name: train.get_dataset_shard(name).materialize().to_pandas() for name in ("train", "valid")}
    data = {name: xgboost.DMatrix(df.drop(columns=["label"]), label=df["label"]) for name, df in frames.items()}
    params = {"objective": "binary:logistic", "eval_metric": ["logloss"], "nthread": 1, **config}
    xgboost.train(params, data["train"], num_boost_round=10, evals=[(data["train"], "train"), (data["valid"], "valid")],
                  callbacks=[callback()])


def xgboost_tuner(ray, tune, storage: str) -> float:
    import numpy as np
    from _engine import import_engine

    train = import_engine(f"{ENGINE}.train")
    xgb = import_engine(f"{ENGINE}.train.xgboost")
    import_engine(f"{ENGINE}.data")
    rng = np.random.default_rng(0)
    x = rng.random((2000, 4))
    items = [{"a": a, "b": b, "c": c, "d": d, "label": int(a + b > 1)} for a, b, c, d in x.tolist()]
    train_ds, valid_ds = ray.data.from_items(items).train_test_split(test_size=0.3)
    trainer = xgb.XGBoostTrainer(xgboost_loop, train_loop_config={"max_depth": 3},
                                 scaling_config=train.ScalingConfig(num_workers=1),
                                 datasets={"train": train_ds, "valid": valid_ds})
    run_config_cls = getattr(tune, "RunConfig", None) or train.RunConfig
    start = time.perf_counter()
    grid = tune.Tuner(trainer, param_space={"train_loop_config": {"max_depth": tune.randint(2, 12)}},
                      tune_config=tune.TuneConfig(num_samples=3, metric="valid-logloss", mode="min"),
                      run_config=run_config_cls(name="xgb", storage_path=storage, verbose=0)).fit()
    wall = time.perf_counter() - start
    assert len(grid) == 3 and not grid.errors, grid.errors
    assert grid.get_best_result().checkpoint is not None
    return wall


# --- both engines, side by side -------------------------------------------------------------


def compare(argv: list[str]) -> None:
    outputs = {}
    for engine in ("solray", "ray"):
        python = VENVS[engine] / "bin" / "python"
        if not python.exists():
            print(f"# skipping {engine}: {python} not found", flush=True)
            continue
        out = Path(tempfile.mkstemp(suffix=f"-{engine}.json")[1])
        print(f"# running {engine}", flush=True)
        env = {**os.environ, "RAYMOD": engine}
        if engine == "ray":
            env["RAY_TRAIN_V2_ENABLED"] = "0"  # Ray 2.60's Tuner takes a Trainer only with Train V1
        proc = subprocess.run([str(python), __file__, "--engine-only", "--json", str(out), *argv],
                              env=env, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"# {engine} failed (rc={proc.returncode}):\n" + "\n".join(proc.stderr.splitlines()[-15:]))
        if out.exists() and out.stat().st_size:
            outputs[engine] = json.loads(out.read_text())
    names = list(dict.fromkeys(n for doc in outputs.values() for n in doc))
    print(f"\n{'workload':<44} {'solray':>10} {'ray':>10} {'solray/ray':>11}")
    for name in names:
        s, r = (outputs.get(e, {}).get(name) for e in ("solray", "ray"))
        unit = (s or r)[1]
        ratio = "-"
        if s and r and r[0]:
            better = s[0] / r[0] if HIGHER_IS_BETTER.get(unit, True) else r[0] / s[0]
            ratio = f"{better:.2f}x"
        print(f"{name:<44} {s[0] if s else float('nan'):>10.2f} {r[0] if r else float('nan'):>10.2f} {ratio:>11}")
    print("(solray/ray: how many times better solray is; > 1 means solray wins)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", help="run only the workloads whose name contains this (100, asha, xgboost)")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--engine-only", action="store_true", help="run RAYMOD's engine only, in this process")
    parser.add_argument("--json", help="write this engine's results to this file")
    args = parser.parse_args()
    if not args.engine_only:
        extra = ["--num-cpus", str(args.num_cpus)] + (["--only", args.only] if args.only else [])
        compare(extra)
        return
    results = run_engine(args.only, args.num_cpus)
    if args.json:
        Path(args.json).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
