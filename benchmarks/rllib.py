"""RLlib benchmark on either engine: PPO on CartPole-v1 with 1 and 2 EnvRunner actors.

    .venv/bin/python benchmarks/rllib.py                          # solray
    RAYMOD=ray .venv-ray/bin/python benchmarks/rllib.py           # Ray 2.60 (rllib + torch there)
    .venv/bin/python benchmarks/rllib.py --compare                # both, one after the other, + table

Same config on both engines (Ray's tuned CartPole PPO example: lr 3e-4, 6 epochs, minibatch
128, vf_loss_coeff 0.01, a [32] linear net with shared value layers, 4000 steps per iteration,
seed 0). Per runner count it trains until ``env_runners/episode_return_mean`` >= 450 (Ray's
100-episode smoothing on both) or the step/time cap, and prints:
  env steps/s     env steps sampled / wall seconds of the train() calls (sampling + learning)
  seconds to 450  wall seconds of train() calls until the mean return first reached 450
  steps to 450    env steps sampled by then
Build time (actor start-up) is not counted. Engines run one after the other, never together.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINE = os.environ.get("RAYMOD", "solray")
ROOT = Path(__file__).resolve().parent.parent
VENVS = {"solray": ROOT / ".venv", "ray": ROOT / ".venv-ray"}
TARGET = 450.0


def ppo_config(ppo_module, num_env_runners: int):
    return (ppo_module.PPOConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=num_env_runners)
            .training(lr=3e-4, num_epochs=6, minibatch_size=128, vf_loss_coeff=0.01,
                      train_batch_size_per_learner=4000)
            .rl_module(model_config={"fcnet_hiddens": [32], "fcnet_activation": "linear",
                                     "vf_share_layers": True})
            .debugging(seed=0))


def run_one(ppo_module, num_env_runners: int, max_steps: int, max_seconds: float) -> dict:
    algo = ppo_config(ppo_module, num_env_runners).build_algo()
    try:
        algo.train()  # warm-up iteration: workers import torch, first weights sync; not timed
        start_steps = None
        train_seconds, steps, reached_s, reached_steps, ret = 0.0, 0, math.nan, math.nan, math.nan
        while steps < max_steps and train_seconds < max_seconds:
            t0 = time.perf_counter()
            result = algo.train()
            train_seconds += time.perf_counter() - t0
            lifetime = result["num_env_steps_sampled_lifetime"]
            if start_steps is None:
                start_steps = lifetime - result["env_runners"]["num_env_steps_sampled"]
            steps = lifetime - start_steps
            ret = result["env_runners"]["episode_return_mean"]
            print(f"#   runners={num_env_runners} steps={lifetime} return={ret:.1f} t={train_seconds:.1f}s",
                  flush=True)
            if ret >= TARGET:
                reached_s, reached_steps = train_seconds, lifetime
                break
        return {"env steps/s": steps / train_seconds, "seconds to 450": reached_s,
                "env steps to 450": reached_steps, "final return": ret}
    finally:
        algo.stop()


def run_engine_here(runners: list[int], max_steps: int, max_seconds: float) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _engine import import_engine

    ray = import_engine(ENGINE)
    ppo_module = import_engine(f"{ENGINE}.rllib.algorithms.ppo")
    ray.init(num_cpus=4, **({"include_dashboard": False} if ENGINE == "ray" else {}))
    results = {}
    try:
        for n in runners:
            for metric, value in run_one(ppo_module, n, max_steps, max_seconds).items():
                name = f"PPO CartPole {n} env runner(s) {metric}"
                results[name] = value
                print(f"{name:<56} {value:>14,.2f}", flush=True)
    finally:
        ray.shutdown()
    return results


def compare(argv: list[str]) -> None:
    """Run both engines in their venvs and print solray, Ray and their ratio."""
    out = {}
    for engine in ("solray", "ray"):
        python = VENVS[engine] / "bin" / "python"
        if not python.exists():
            print(f"# skipping {engine}: {python} not found")
            continue
        path = Path(tempfile.mkdtemp()) / f"{engine}.json"
        print(f"# running {engine}", flush=True)
        subprocess.run([str(python), __file__, "--json", str(path), *argv],
                       env={**os.environ, "RAYMOD": engine}, check=True)
        out[engine] = json.loads(path.read_text())["results"]
    print("\n| metric | solray | Ray 2.60 | solray/Ray |\n|---|---|---|---|")
    for name, value in out.get("solray", {}).items():
        theirs = out.get("ray", {}).get(name, math.nan)
        ratio = value / theirs if theirs and not math.isnan(theirs) else math.nan
        print(f"| {name} | {value:,.1f} | {theirs:,.1f} | {ratio:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runners", default="1,2", help="comma-separated EnvRunner counts")
    parser.add_argument("--max-steps", type=int, default=300_000, help="stop a run after this many env steps")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop a run after this many seconds")
    parser.add_argument("--json", help="write results to this file")
    parser.add_argument("--compare", action="store_true", help="run solray and Ray and print the table")
    args, rest = parser.parse_known_args(argv)
    if args.compare:
        compare([a for a in (argv or sys.argv[1:]) if a != "--compare"])
        return
    results = run_engine_here([int(n) for n in args.runners.split(",")], args.max_steps, args.max_seconds)
    if args.json:
        Path(args.json).write_text(json.dumps({"engine": ENGINE, "results": results}, indent=1))


if __name__ == "__main__":
    main()
