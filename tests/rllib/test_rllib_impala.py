"""IMPALA and APPO: V-trace math, asynchronous sampling on real EnvRunner actors, learning
CartPole, failures, checkpoints, Tune and the CLI by name."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import wait_for
from rllib_helpers import CrashingCartPole, alive_actor_classes, train_until_return

from solray import tune
from solray.air import RunConfig
from solray.cli.main import cli
from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.appo import APPO, APPOConfig
from solray.rllib.algorithms.impala import IMPALA, IMPALAConfig
from solray.rllib.algorithms.impala.vtrace import vtrace
from solray.rllib.algorithms.ppo.ppo_learner import compute_gae
from solray.rllib.algorithms.registry import get_algorithm_class
from solray.rllib.core.columns import Columns

MODEL = {"fcnet_hiddens": [64], "fcnet_activation": "tanh"}
# Ray's tuned CartPole IMPALA settings, with a larger learning rate for a short test.
FAST_CARTPOLE = dict(lr=0.002, vf_loss_coeff=0.05, entropy_coeff=0.0)


def cartpole(config_cls: type, num_env_runners: int = 2, **training):
    return (config_cls().environment("CartPole-v1")
            .env_runners(num_env_runners=num_env_runners)
            .training(**{**FAST_CARTPOLE, **training})
            .rl_module(model_config=MODEL)
            # Ray's 10 s minimum per iteration is long for a test: iterate every 2000 steps.
            .reporting(min_time_s_per_iteration=None, min_sample_timesteps_per_iteration=2000)
            .debugging(seed=0))


# --- V-trace ------------------------------------------------------------------------------------
def reference_vtrace(behaviour_logp, target_logp, rewards, values, next_values, terminateds, chain_ends,
                     gamma, rho_bar, pg_rho_bar, lambda_=1.0):
    """The paper's definition, term by term: for each step, the sum over the rest of its chain."""
    n = len(rewards)
    ratio = np.exp(np.array(target_logp, np.float64) - np.array(behaviour_logp, np.float64))
    rho = np.minimum(rho_bar, ratio) if rho_bar is not None else ratio
    c = lambda_ * np.minimum(1.0, ratio)
    ends = [bool(e) or t == n - 1 for t, e in enumerate(chain_ends)]
    v_next = [0.0 if terminateds[t] else next_values[t] for t in range(n)]
    deltas = [rho[t] * (rewards[t] + gamma * v_next[t] - values[t]) for t in range(n)]
    vs = np.zeros(n)
    for s in range(n):
        total, weight, t = 0.0, 1.0, s
        while True:
            total += weight * deltas[t]
            if ends[t]:
                break
            weight *= gamma * c[t]
            t += 1
        vs[s] = values[s] + total
    pg_rho = np.minimum(pg_rho_bar, ratio) if pg_rho_bar is not None else ratio
    adv = [pg_rho[s] * (rewards[s] + gamma * (v_next[s] if ends[s] else vs[s + 1]) - values[s]) for s in range(n)]
    return vs, np.array(adv)


def trajectory(rng, on_policy: bool):
    """Two env pieces of 5 steps (env-major): the first has a terminated step inside it, the
    second a truncated one; each piece ends at ``seg_end`` and bootstraps there."""
    n = 10
    values = rng.normal(size=n).astype(np.float32)
    terminateds = np.zeros(n, bool)
    truncateds = np.zeros(n, bool)
    seg_end = np.zeros(n, bool)
    terminateds[1], truncateds[7], seg_end[4], seg_end[9] = True, True, True, True
    chain_ends = terminateds | truncateds | seg_end
    next_values = rng.normal(size=n).astype(np.float32)
    inside = ~chain_ends
    next_values[:-1][inside[:-1]] = values[1:][inside[:-1]]  # V(x_{t+1}) within a chain
    behaviour = np.log(rng.uniform(0.2, 0.9, n)).astype(np.float32)
    target = behaviour if on_policy else behaviour + rng.normal(scale=0.7, size=n).astype(np.float32)
    return dict(behaviour_logp=behaviour, target_logp=target, rewards=rng.normal(size=n).astype(np.float32),
                values=values, next_values=next_values, terminateds=terminateds, chain_ends=chain_ends,
                truncateds=truncateds, seg_end=seg_end)


@pytest.mark.parametrize("rho_bar,pg_rho_bar,lambda_", [(1.0, 1.0, 1.0), (2.0, 0.5, 1.0), (None, None, 0.9)])
def test_vtrace_matches_the_papers_definition_off_policy(rho_bar, pg_rho_bar, lambda_):
    traj = trajectory(np.random.default_rng(1), on_policy=False)
    ratio = np.exp(traj["target_logp"] - traj["behaviour_logp"])
    assert (ratio > 1.2).any() and (ratio < 0.8).any()  # the clipping thresholds matter
    args = {k: traj[k] for k in ("behaviour_logp", "target_logp", "rewards", "values", "next_values",
                                 "terminateds", "chain_ends")}
    vs, adv = vtrace(**args, gamma=0.9, clip_rho_threshold=rho_bar, clip_pg_rho_threshold=pg_rho_bar,
                     lambda_=lambda_)
    ref_vs, ref_adv = reference_vtrace(*args.values(), 0.9, rho_bar, pg_rho_bar, lambda_)
    np.testing.assert_allclose(vs, ref_vs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    # A terminated step's target is its reward alone; clipping changes the answer.
    assert vs[1] == pytest.approx(traj["values"][1] + min(ratio[1], rho_bar or np.inf) *
                                  (traj["rewards"][1] - traj["values"][1]), rel=1e-5)


def test_on_policy_vtrace_is_n_step_returns_and_gae_with_lambda_one():
    traj = trajectory(np.random.default_rng(2), on_policy=True)
    gamma = 0.95
    vs, adv = vtrace(traj["behaviour_logp"], traj["target_logp"], traj["rewards"], traj["values"],
                     traj["next_values"], traj["terminateds"], traj["chain_ends"], gamma)
    # n-step returns: discounted rewards to the chain's end, plus the bootstrap unless terminated
    returns, ret = np.zeros(10), 0.0
    for t in range(9, -1, -1):
        if traj["chain_ends"][t]:
            ret = 0.0 if traj["terminateds"][t] else float(traj["next_values"][t])
        ret = traj["rewards"][t] + gamma * ret
        returns[t] = ret
    np.testing.assert_allclose(vs, returns, rtol=1e-5, atol=1e-5)
    assert vs[1] == pytest.approx(traj["rewards"][1])  # terminated: nothing bootstrapped
    # PPO's GAE (lambda 1) on the same steps gives the same advantages.
    obs = np.stack([traj["values"], np.zeros(10, np.float32)], 1)
    next_obs = np.stack([traj["next_values"], np.zeros(10, np.float32)], 1)
    batch = {Columns.OBS: obs, Columns.NEXT_OBS: next_obs, Columns.REWARDS: traj["rewards"],
             Columns.TERMINATEDS: traj["terminateds"], Columns.TRUNCATEDS: traj["truncateds"],
             "seg_end": traj["seg_end"]}
    values_of_obs = SimpleNamespace(compute_values=lambda b: b[Columns.OBS][:, 0])
    gae = compute_gae(values_of_obs, batch, SimpleNamespace(gamma=gamma, lambda_=1.0, use_gae=True, use_critic=True))
    np.testing.assert_allclose(adv, gae[Columns.ADVANTAGES], rtol=1e-5, atol=1e-5)


# --- IMPALA on EnvRunner actors -------------------------------------------------------------------
@pytest.fixture(scope="module")
def impala(rl_cluster):
    """IMPALA trained on CartPole with two EnvRunner actors until mean return >= 100."""
    algo = cartpole(IMPALAConfig).build_algo()
    results = train_until_return(algo, 100, iterations=30)  # at most 60k env steps
    yield algo, results
    algo.stop()


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_impala_learns_cartpole_with_two_async_env_runners(impala):
    algo, results = impala
    returns = [r["env_runners"]["episode_return_mean"] for r in results]
    assert returns[-1] >= 100, returns
    assert alive_actor_classes().count("SingleAgentEnvRunner") >= 2
    r = results[-1]
    assert r["num_env_steps_sampled_lifetime"] >= 2000 * len(results)
    assert r["env_runners"]["num_env_steps_sampled_lifetime"] == r["num_env_steps_sampled_lifetime"]
    learner = r["learners"]["default_policy"]
    for key in ("policy_loss", "vf_loss", "entropy", "total_loss", "num_module_steps_trained"):
        assert key in learner, key
    assert learner["num_module_steps_trained"] == 500  # train_batch_size
    assert learner["num_minibatch_updates"] == 1
    trained = r["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"]
    assert trained % 500 == 0 and 0 <= r["num_env_steps_sampled_lifetime"] - trained < 500  # leftover < a batch


def test_impala_samples_asynchronously(impala):
    """Runners sample while the learner updates: trained steps were sampled with weights
    older than the learner's (a synchronous algorithm's lag would be 0), and requests are in
    flight between iterations."""
    algo, results = impala
    assert max(r["learners"]["__all_modules__"]["max_policy_lag"] for r in results) >= 1
    assert all(r["learners"]["__all_modules__"]["mean_policy_lag"] > 0 for r in results[1:])
    assert results[-1]["env_runners"]["num_in_flight_requests"] == 2
    assert algo.env_runner_group.num_in_flight == 2


def test_impala_checkpoint_restores_and_trains_on(impala, tmp_path):
    algo, _ = impala
    path = algo.save_to_path(str(tmp_path / "ckpt"))
    saved = algo.get_weights()["default_policy"]
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, IMPALA) and restored.iteration == algo.iteration
        for name, value in restored.get_weights()["default_policy"].items():
            np.testing.assert_array_equal(value, saved[name])
        result = restored.train()
        assert result["training_iteration"] == algo.iteration + 1
        assert result["env_runners"]["episode_return_mean"] >= 50  # not starting from scratch (~20)
    finally:
        restored.stop()


# --- APPO ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_appo_learns_cartpole_checkpoints_its_target_network_and_stops(rl_cluster, tmp_path):
    baseline = alive_actor_classes()
    algo = cartpole(APPOConfig, use_kl_loss=True).build_algo()
    try:
        results = []
        for _ in range(40):  # at most 80k env steps
            results.append(algo.train())
            if results[-1]["env_runners"]["episode_return_mean"] >= 150:
                break
        returns = [r["env_runners"]["episode_return_mean"] for r in results]
        assert returns[-1] >= 150, returns
        learner = results[-1]["learners"]["default_policy"]
        for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff", "num_target_updates"):
            assert key in learner, key
        # each batch is replayed circular_buffer_iterations_per_batch (2) times
        assert learner["num_minibatch_updates"] == 2
        trained_batches = results[-1]["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"] // 500
        assert learner["num_target_updates"] == trained_batches // 2  # target_network_update_freq
        path = algo.save_to_path(str(tmp_path / "appo"))
        target = algo.learner_group.local_learner().extra_state["default_policy"]["target"].state_dict()
        assert algo.env_runner_group.num_in_flight == 2  # stop() must release runners mid-request
    finally:
        algo.stop()
    restored = APPO.from_checkpoint(path)
    try:
        restored_target = restored.learner_group.local_learner().extra_state["default_policy"]["target"]
        for name, value in restored_target.state_dict().items():
            torch.testing.assert_close(value, target[name])
        assert restored.train()["env_runners"]["episode_return_mean"] >= 75
    finally:
        restored.stop()
    wait_for(lambda: sorted(alive_actor_classes()) == sorted(baseline), what="stop() to release every actor")


# --- failures, local sampling, learner actors ---------------------------------------------------
def test_crashing_env_restarts_its_runner_and_drops_its_requests(rl_cluster, tmp_path, caplog):
    config = (IMPALAConfig()
              .environment(CrashingCartPole, env_config={"crash_at_step": 120, "marker": str(tmp_path / "crashed")})
              .env_runners(num_env_runners=1, max_requests_in_flight_per_env_runner=2)
              .reporting(min_time_s_per_iteration=None, min_sample_timesteps_per_iteration=500)
              .rl_module(model_config=MODEL).debugging(seed=0))
    algo = config.build_algo()
    try:
        with caplog.at_level(logging.ERROR, logger="solray.rllib"):
            results = [algo.train() for _ in range(2)]
        assert os.path.exists(tmp_path / "crashed")
        assert results[-1]["fault_tolerance"]["num_remote_worker_restarts"] == 1
        assert results[-1]["fault_tolerance"]["num_healthy_workers"] == 1
        assert "env exploded mid-episode" in "\n".join(r.getMessage() for r in caplog.records)
        assert results[-1]["env_runners"]["num_env_steps_sampled"] >= 500  # the new runner samples
        assert results[-1]["learners"]["default_policy"]["num_module_steps_trained"] == 500
        assert algo.env_runner_group.num_in_flight == 2  # max_requests_in_flight_per_env_runner
    finally:
        algo.stop()


@pytest.mark.timeout(300)
def test_local_sampling_with_a_learner_actor(rl_cluster):
    config = cartpole(IMPALAConfig, num_env_runners=0).learners(num_learners=1)
    algo = config.build_algo()
    try:
        assert algo.env_runner_group.local_env_runner is not None
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] >= 2000
        assert result["learners"]["default_policy"]["num_module_steps_trained"] == 500
        assert "LearnerActor" in alive_actor_classes()
    finally:
        algo.stop()


# --- by name: registry, Tune, CLI; errors ---------------------------------------------------------------
def test_tuner_runs_appo_by_name(rl_cluster, tmp_path):
    assert get_algorithm_class("APPO") is APPO and get_algorithm_class("IMPALA") is IMPALA
    config = cartpole(APPOConfig, num_env_runners=1).reporting(min_sample_timesteps_per_iteration=500)
    results = tune.Tuner("APPO", param_space=config,
                         run_config=RunConfig(stop={"training_iteration": 2}, storage_path=str(tmp_path))).fit()
    assert not results.errors and len(results) == 1
    metrics = results[0].metrics
    assert metrics["training_iteration"] == 2
    assert metrics["num_env_steps_sampled_lifetime"] >= 1000
    assert "policy_loss" in metrics["learners"]["default_policy"]


def test_cli_trains_impala_by_name(rl_cluster):
    config = {"num_env_runners": 1, "min_time_s_per_iteration": None, "min_sample_timesteps_per_iteration": 500,
              "seed": 0, "model_config": {"fcnet_hiddens": [16]}}
    result = CliRunner().invoke(cli, ["rllib", "train", "--algo", "IMPALA", "--env", "CartPole-v1",
                                      "--stop", json.dumps({"training_iteration": 2}), "--config", json.dumps(config)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Training IMPALA on CartPole-v1" in result.output
    assert "Done: iteration 2" in result.output


@pytest.mark.parametrize("config_cls", [IMPALAConfig, APPOConfig])
def test_bad_configs_fail_at_build_with_a_clear_error(rl_cluster, config_cls):
    with pytest.raises(ValueError, match="PyTorch only"):
        config_cls().environment("CartPole-v1").framework("tf2").build_algo()
    with pytest.raises(ValueError, match="vtrace=False is not supported"):
        config_cls().environment("CartPole-v1").training(vtrace=False).build_algo()
    with pytest.raises(ValueError, match="'vtrace_clip_rho_threshold' must be >= 0"):
        config_cls().training(vtrace_clip_rho_threshold=-1.0)


def test_defaults_follow_ray():
    impala, appo = IMPALAConfig(), APPOConfig()
    assert (impala.lr, impala.rollout_fragment_length, impala.train_batch_size, impala.grad_clip) == (0.0005, 50, 500, 40.0)
    assert (impala.vf_loss_coeff, impala.entropy_coeff, impala.num_epochs, impala.broadcast_interval) == (0.5, 0.01, 1, 1)
    assert (appo.clip_param, appo.use_kl_loss, appo.kl_coeff, appo.tau, appo.target_network_update_freq) == \
        (0.4, False, 1.0, 1.0, 2)
    assert (appo.circular_buffer_num_batches, appo.circular_buffer_iterations_per_batch) == (4, 2)
    impala.training(num_gpu_loader_threads=4)  # accepted (Ray's GPU loader knob)
