"""``solray rllib train``: train an algorithm on an env from the shell (Ray's ``rllib`` CLI).

    solray rllib train --algo PPO --env CartPole-v1 \\
        --stop '{"env_runners/episode_return_mean": 450}' --config '{"num_env_runners": 2}'

Prints one table row per iteration (iteration, env steps, mean return, steps/s, time) and,
with ``--checkpoint-at-end``/``--checkpoint-freq``, where the checkpoints went.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import click

_DEFAULT_STOP = {"training_iteration": 100}


def should_stop(result: dict, stop: dict[str, float]) -> bool:
    """Any criterion met; nested results are named ``"env_runners/episode_return_mean"``."""
    from solray.air._internal.storage import flatten  # imports pyarrow: not at CLI start-up

    flat = flatten(result)
    for key, threshold in stop.items():
        if key not in flat:
            continue
        value = flat[key]
        if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)) \
                and value >= threshold:
            return True
    return False


def _json_option(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise click.BadParameter(f"{what} must be a JSON object: {e}") from e
    if not isinstance(value, dict):
        raise click.BadParameter(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


HEADER = f"{'iter':>5} {'env steps':>11} {'return mean':>12} {'steps/s':>9} {'time (s)':>9}"


def progress_row(result: dict, steps_per_s: float) -> str:
    """One table row for a ``train()`` result."""
    ret = result["env_runners"]["episode_return_mean"]
    return (f"{result['training_iteration']:>5} {result['num_env_steps_sampled_lifetime']:>11,} "
            f"{ret:>12.2f} {steps_per_s:>9,.0f} {result['time_total_s']:>9.1f}")


@click.group(name="rllib")
def rllib_cli() -> None:
    """Reinforcement learning with solray.rllib."""


@rllib_cli.command()
@click.option("--algo", "--run", "algo", required=True, help="Algorithm name: PPO, APPO, IMPALA, DQN, SAC.")
@click.option("--env", required=True, help="Gymnasium env id or a registered env name.")
@click.option("--stop", "stop_json", default=json.dumps(_DEFAULT_STOP), show_default=True,
              help='JSON stop criteria, e.g. \'{"env_runners/episode_return_mean": 450}\'.')
@click.option("--config", "config_json", default="{}", help="JSON of AlgorithmConfig keys, e.g. '{\"lr\": 3e-4}'.")
@click.option("--framework", default=None, help="torch (default) or tf2.")
@click.option("--checkpoint-freq", type=int, default=0, help="Save every N iterations (0: never).")
@click.option("--checkpoint-at-end", is_flag=True, help="Save a checkpoint when training stops.")
@click.option("--storage-path", default=None, help="Folder for checkpoints (default: a temporary folder).")
@click.option("--address", default=None, help="Cluster to connect to (default: start a local one).")
@click.option("-v", "--verbose", is_flag=True, help="Print the full result of each iteration.")
def train(algo: str, env: str, stop_json: str, config_json: str, framework: str | None, checkpoint_freq: int,
          checkpoint_at_end: bool, storage_path: str | None, address: str | None, verbose: bool) -> None:
    """Train ALGO on ENV until a --stop criterion is met, printing a row per iteration."""
    import solray
    from solray.rllib.algorithms.registry import get_algorithm_class

    stop = _json_option(stop_json, "--stop")
    overrides = _json_option(config_json, "--config")
    try:
        algo_class, config = get_algorithm_class(algo, return_config=True)
        config.environment(env)
        config.update_from_dict(overrides)
        if framework:
            config.framework(framework)
    except (ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from e
    started_here = not solray.is_initialized()
    if started_here:
        solray.init(address=address)
    try:
        try:
            algorithm = config.build_algo()
        except (ValueError, TypeError, ImportError) as e:
            raise click.ClickException(str(e)) from e
        _train_loop(algorithm, stop, checkpoint_freq, checkpoint_at_end, storage_path, verbose)
    finally:
        if started_here:
            solray.shutdown()


def _train_loop(algorithm: Any, stop: dict, checkpoint_freq: int, checkpoint_at_end: bool,
                storage_path: str | None, verbose: bool) -> None:
    click.echo(f"Training {type(algorithm).__name__} on {algorithm.config.env}; stop: {json.dumps(stop)}")
    click.echo(HEADER)
    last_steps, last_time = 0, time.perf_counter()
    result: dict = {}
    try:
        while True:
            result = algorithm.train()
            now = time.perf_counter()
            steps = result["num_env_steps_sampled_lifetime"]
            click.echo(progress_row(result, (steps - last_steps) / max(now - last_time, 1e-9)))
            last_steps, last_time = steps, now
            if verbose:
                click.echo(json.dumps(result, default=str, indent=1))
            if checkpoint_freq and result["training_iteration"] % checkpoint_freq == 0:
                click.echo(f"Checkpoint: {_save(algorithm, storage_path, result)}")
            if should_stop(result, stop):
                break
        if checkpoint_at_end:
            click.echo(f"Checkpoint: {_save(algorithm, storage_path, result)}")
        click.echo(f"Done: iteration {result['training_iteration']}, "
                   f"episode_return_mean {result['env_runners']['episode_return_mean']:.2f}")
    finally:
        algorithm.stop()


def _save(algorithm: Any, storage_path: str | None, result: dict) -> str:
    from solray.air._internal.storage import checkpoint_dir_name

    path = None
    if storage_path:
        path = os.path.join(storage_path, checkpoint_dir_name(result["training_iteration"]))
    return algorithm.save_to_path(path)


def main() -> None:
    rllib_cli(prog_name="rllib")
