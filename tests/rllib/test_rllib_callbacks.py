"""RLlib callbacks: algorithm hooks in the driver, episode hooks in the EnvRunner actors, and
the custom metrics they log reaching the results."""

from __future__ import annotations

import math

import pytest
from rllib_helpers import SMALL_MODEL, CrashingCartPole

from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.callbacks import DefaultCallbacks, make_multi_callbacks
from solray.rllib.algorithms.ppo import PPOConfig
from solray.rllib.callbacks.callbacks import RLlibCallback
from solray.rllib.utils.metrics.metrics_logger import MetricsLogger


class CountingCallback(RLlibCallback):
    """Counts episode events through the metrics logger and marks what reached the driver."""

    def on_algorithm_init(self, *, algorithm, **kwargs):
        algorithm.init_hook_ran = True

    def on_episode_start(self, *, episode, env_index, **kwargs):
        episode.custom_data["start_obs"] = episode.get_observations(0)
        episode.custom_data["env_index"] = env_index

    def on_episode_step(self, *, episode, metrics_logger, **kwargs):
        metrics_logger.log_value("steps_seen", 1, reduce="lifetime_sum")
        metrics_logger.log_value("abs_pole_angle_max", abs(float(episode.get_observations(-1)[2])), reduce="max")

    def on_episode_end(self, *, episode, metrics_logger, **kwargs):
        assert episode.is_done and episode.custom_data["start_obs"] is not None
        metrics_logger.log_value("episodes_seen", 1, reduce="lifetime_sum")
        metrics_logger.log_value(("cb", "return_this_iter"), episode.get_return(), reduce="item_series")

    def on_train_result(self, *, algorithm, result, **kwargs):
        result["train_hook_saw_iteration"] = algorithm.iteration


def small_ppo(num_env_runners: int = 1) -> PPOConfig:
    return (PPOConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=2)
            .training(train_batch_size_per_learner=400, minibatch_size=200, num_epochs=1)
            .rl_module(model_config=SMALL_MODEL)
            .debugging(seed=0))


def test_episode_hooks_run_in_the_env_runners_and_their_metrics_reach_the_results(rl_cluster):
    algo = small_ppo(num_env_runners=2).callbacks(CountingCallback).build_algo()
    try:
        assert algo.init_hook_ran
        for _ in range(2):
            result = algo.train()
        runners = result["env_runners"]
        # Every sampled step fired on_episode_step once, every finished episode on_episode_end once.
        assert runners["steps_seen"] == result["num_env_steps_sampled_lifetime"]
        assert runners["episodes_seen"] == result["num_episodes_lifetime"]
        assert 0.2 < runners["abs_pole_angle_max"] < 0.5  # CartPole episodes end past 0.2095 rad
        returns = runners["cb"]["return_this_iter"]
        assert len(returns) == runners["num_episodes"]
        assert math.isclose(sum(returns) / len(returns), runners["episode_return_mean"])
        assert result["train_hook_saw_iteration"] == result["training_iteration"] == 2
    finally:
        algo.stop()


def test_single_function_hooks_and_evaluation_metrics(rl_cluster):
    seen = []

    def on_episode_end(*, episode, metrics_logger, **kwargs):
        metrics_logger.log_value("ep_len", len(episode), reduce="mean", window=1000)

    config = (small_ppo(num_env_runners=0)
              .evaluation(evaluation_interval=1, evaluation_num_env_runners=1, evaluation_duration=3)
              .callbacks(on_episode_end=on_episode_end,
                         on_evaluate_start=lambda *, algorithm, **kw: seen.append("start"),
                         on_evaluate_end=lambda *, evaluation_metrics, **kw: seen.append(
                             evaluation_metrics["env_runners"]["num_episodes"])))
    algo = config.build_algo()
    try:
        result = algo.train()
        assert seen == ["start", 3]
        assert result["env_runners"]["ep_len"] == pytest.approx(result["env_runners"]["episode_len_mean"])
        evaluation = result["evaluation"]["env_runners"]
        assert evaluation["ep_len"] == pytest.approx(evaluation["episode_len_mean"])
    finally:
        algo.stop()


class LoadedCallback(DefaultCallbacks):
    def on_checkpoint_loaded(self, *, algorithm, **kwargs):
        algorithm.loaded_hook_ran = True


class RecreatedCallback(RLlibCallback):
    def on_env_runners_recreated(self, *, algorithm, env_runner_indices, is_evaluation, **kwargs):
        algorithm.recreated = (list(env_runner_indices), is_evaluation)


def test_checkpoint_and_restart_hooks_with_multi_callbacks(rl_cluster, tmp_path):
    both = make_multi_callbacks([LoadedCallback, RecreatedCallback])
    config = (small_ppo()
              .environment(CrashingCartPole, env_config={"crash_at_step": 30, "marker": str(tmp_path / "crashed")})
              .callbacks(both))
    algo = config.build_algo()
    try:
        algo.train()  # the env raises once: the runner is replaced
        assert algo.recreated == ([1], False)
        path = algo.save_to_path(str(tmp_path / "ckpt"))
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert restored.loaded_hook_ran
    finally:
        restored.stop()


def test_callback_config_errors_name_the_hook():
    with pytest.raises(ValueError, match="on_episode_ending"):
        PPOConfig().callbacks(on_episode_ending=print)
    with pytest.raises(ValueError, match="callbacks_on_episode_end"):
        PPOConfig().callbacks(on_episode_end=3)
    with pytest.raises(ValueError, match="callbacks_on_episode_end"):
        PPOConfig().callbacks(on_episode_end=[print, "not a function"])


def test_metrics_logger_reductions():
    logger = MetricsLogger()
    for value in (1.0, 5.0, 3.0):
        logger.log_value("mean3", value, window=2)
        logger.log_value("ema", value)
        logger.log_value("max", value, reduce="max")
        logger.log_value("sum", value, reduce="sum")
        logger.log_value("total", value, reduce="lifetime_sum")
        logger.log_value(("nested", "last"), value, reduce="item")
    assert logger.peek("ema") == pytest.approx((1.0 * 0.99 + 5.0 * 0.01) * 0.99 + 3.0 * 0.01)
    first = logger.reduce()
    assert first == {"mean3": 4.0, "ema": pytest.approx(logger.peek("ema")), "max": 5.0, "sum": 9.0,
                     "total": 9.0, "nested": {"last": 3.0}}
    logger.log_value("sum", 2.0, reduce="sum")
    logger.log_value("total", 2.0, reduce="lifetime_sum")
    second = logger.reduce()
    assert second["sum"] == 2.0 and second["total"] == 11.0 and second["mean3"] == 4.0
    upstream = MetricsLogger()
    runner = MetricsLogger()
    runner.log_value("m", 2.0, reduce="min")
    runner.log_value("m", 1.0, reduce="min")
    upstream.merge(runner.drain())
    assert upstream.reduce() == {"m": 1.0}
    with pytest.raises(ValueError, match="reduce"):
        MetricsLogger().log_value("x", 1, reduce="median")
