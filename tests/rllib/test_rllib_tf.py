"""framework("tf2"): PPO and DQN with TensorFlow learners, on real EnvRunner actors."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from rllib_helpers import (
    SMALL_MODEL,
    assert_dqn_learns_cartpole,
    assert_seeded_runs_reproducible,
    dqn_cartpole_config,
    ppo_cartpole_config,
    train_until_return,
)

import solray
from solray.rllib._internal.tf.modules import DefaultPPOTfRLModule
from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.dqn import DQNConfig
from solray.rllib.algorithms.ppo import PPO, PPOConfig
from solray.rllib.algorithms.sac import SACConfig
from solray.rllib.core.rl_module.rl_module import RLModuleSpec

pytest.importorskip("tensorflow")


def tf2_cartpole_ppo(num_env_runners: int = 1, **training) -> PPOConfig:
    return ppo_cartpole_config(num_env_runners, **training).framework("tf2")


def test_tensorflow_is_imported_only_by_what_runs_tf_ops():
    # An EnvRunner builds the tf2 module, loads weights, acts and computes GAE values in NumPy.
    code = """
import sys
import gymnasium as gym
import numpy as np
import solray.rllib
from solray.rllib.algorithms.ppo import PPOConfig
from solray.rllib.algorithms.dqn import DQNConfig
from solray.rllib._internal.tf.modules import DefaultPPOTfRLModule
module = DefaultPPOTfRLModule(observation_space=gym.spaces.Box(-1, 1, (4,)), action_space=gym.spaces.Discrete(2),
                              model_config={"fcnet_hiddens": [8]})
module.set_state(module.get_state())
actions, extra = module.compute_actions(np.zeros((2, 4), np.float32), True, np.random.default_rng(0),
                                        policy_net=module.numpy_policy())
assert actions.shape == (2,) and module.compute_values({"obs": np.zeros((2, 4), np.float32)}).shape == (2,)
print("tensorflow" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def trained(rl_cluster):
    """tf2 PPO trained on CartPole with one EnvRunner actor until mean return >= 150."""
    algo = tf2_cartpole_ppo().build_algo()
    results = train_until_return(algo, 150, iterations=25)
    yield algo, results
    algo.stop()


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_tf2_ppo_learns_cartpole(trained):
    algo, results = trained
    assert results[-1]["env_runners"]["episode_return_mean"] >= 150, \
        [r["env_runners"]["episode_return_mean"] for r in results]
    learner = results[-1]["learners"]["default_policy"]
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff",
                "gradients_default_optimizer_global_norm", "default_optimizer_learning_rate"):
        assert key in learner, key
    assert learner["num_module_steps_trained"] == 2000
    assert type(algo.learner_group.local_learner()).__name__ == "PPOTfLearner"
    # The EnvRunner actor acted and computed GAE in NumPy: it never imported TensorFlow.
    assert algo.env_runner_group.foreach_env_runner(lambda r: "tensorflow" in sys.modules) == [False]


def test_tf2_module_forward_inference_gives_logits(trained):
    algo, _ = trained
    module = algo.get_module()
    assert module.framework == "tf2"
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    logits = np.asarray(module.forward_inference({"obs": obs})["action_dist_inputs"])
    assert logits.shape == (3, 2)
    # The NumPy policy the EnvRunners act with computes the same logits and values as TF.
    np.testing.assert_allclose(module.numpy_policy()(obs), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(module.compute_values({"obs": obs}),
                               np.asarray(module.forward_train({"obs": obs})["vf_preds"]), rtol=1e-5, atol=1e-5)


def test_tf2_checkpoint_restore_continue(trained, tmp_path):
    algo, _ = trained
    path = algo.save_to_path(str(tmp_path / "ckpt"))
    saved = algo.learner_group.get_state()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, PPO) and restored.config.framework_str == "tf2"
        again = restored.learner_group.get_state()
        for name, value in saved["weights"]["default_policy"].items():
            np.testing.assert_array_equal(again["weights"]["default_policy"][name], value)
        opt_saved = saved["optimizers"]["default_policy"]["default"]
        opt_again = again["optimizers"]["default_policy"]["default"]
        assert opt_again["state"][0]["step"] == opt_saved["state"][0]["step"] > 0
        for i, entry in opt_saved["state"].items():
            np.testing.assert_array_equal(opt_again["state"][i]["exp_avg"], entry["exp_avg"])
            np.testing.assert_array_equal(opt_again["state"][i]["exp_avg_sq"], entry["exp_avg_sq"])
        assert again["extra"]["default_policy"]["kl_coeff"] == saved["extra"]["default_policy"]["kl_coeff"]
        result = restored.train()
        assert result["training_iteration"] == algo.iteration + 1
        # The restored policy starts where the saved one was, not from scratch.
        assert result["env_runners"]["episode_return_mean"] >= 100
    finally:
        restored.stop()


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_tf2_dqn_learns_cartpole(rl_cluster, tmp_path):
    algo = dqn_cartpole_config().framework("tf2").build_algo()
    try:
        # tf2 first reaches it around the 8th iteration (torch's test allows 8): a margin of 4.
        assert_dqn_learns_cartpole(algo, iterations=12, checkpoint_path=str(tmp_path / "dqn"))
    finally:
        algo.stop()


def test_tf2_dqn_target_bootstraps_with_gamma_to_the_n_step():
    config = DQNConfig().framework("tf2").training(gamma=0.5, double_q=False, td_error_loss_fn="mse")
    learner_cls, module_cls = config.algo_class.framework_classes(config)
    spec = RLModuleSpec(module_class=module_cls, observation_space=gym.spaces.Box(-1, 1, (3,)),
                        action_space=gym.spaces.Discrete(2), model_config={"fcnet_hiddens": [8], "dueling": False})
    learner = learner_cls(config, {"default_policy": spec})
    rng = np.random.default_rng(0)
    batch = {"obs": rng.normal(size=(4, 3)).astype(np.float32), "new_obs": rng.normal(size=(4, 3)).astype(np.float32),
             "actions": np.array([0, 1, 1, 0]), "rewards": np.array([1.0, 2.0, 0.5, 1.0], np.float32),
             "terminateds": np.array([False, False, True, False]), "weights": np.ones(4, np.float32)}

    def expected_td(discount):
        q = learner.module["default_policy"].numpy_policy()(batch["obs"])[np.arange(4), batch["actions"]]
        next_q = learner.extra_state["default_policy"]["target"].numpy_policy()(batch["new_obs"]).max(-1)
        return q - (batch["rewards"] + discount * (1.0 - batch["terminateds"]) * next_q)

    expected = expected_td(0.5)
    td = learner.update_module("default_policy", dict(batch), timestep=0)["_td_error"]
    np.testing.assert_allclose(td, expected, rtol=1e-4, atol=1e-5)
    n_step = np.array([1, 3, 2, 3])
    expected = expected_td(0.5 ** n_step)
    td = learner.update_module("default_policy", {**batch, "n_step": n_step}, timestep=0)["_td_error"]
    np.testing.assert_allclose(td, expected, rtol=1e-4, atol=1e-5)


def test_tf2_seeded_runs_are_reproducible(rl_cluster):
    assert_seeded_runs_reproducible(tf2_cartpole_ppo(num_env_runners=0, train_batch_size_per_learner=500))


@pytest.mark.timeout(300)
def test_two_tf2_learner_actors_stay_identical(rl_cluster):
    config = tf2_cartpole_ppo(num_env_runners=0, train_batch_size_per_learner=500, num_epochs=2)
    config.learners(num_learners=2)
    algo = config.build_algo()
    try:
        before = algo.get_weights()["default_policy"]
        result = algo.train()
        assert result["learners"]["default_policy"]["num_module_steps_trained"] == 500
        w0, w1 = solray.get([a.call.remote("get_weights") for a in algo.learner_group._actors])
        changed = False
        for name, value in before.items():
            np.testing.assert_allclose(w0["default_policy"][name], w1["default_policy"][name], rtol=0, atol=1e-6)
            changed |= not np.allclose(w0["default_policy"][name], value)
        assert changed
    finally:
        algo.stop()


def test_tf2_refuses_what_it_does_not_implement(rl_cluster):
    with pytest.raises(ValueError, match="SAC is implemented in PyTorch only"):
        SACConfig().environment("Pendulum-v1").framework("tf2").build_algo()
    for option in ({"conv_filters": [[16, [4, 4], 2]]}, {"use_lstm": True}):
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"model_config {name}=.*not supported with framework\\('tf2'\\)"):
            tf2_cartpole_ppo(num_env_runners=0).rl_module(model_config={**SMALL_MODEL, **option}).build_algo()
    with pytest.raises(ValueError, match="Image observations .* need a conv encoder"):
        DefaultPPOTfRLModule(observation_space=gym.spaces.Box(0, 255, (10, 10, 3), np.uint8),
                             action_space=gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="use framework\\('tf2'\\)"):
        PPOConfig().environment("CartPole-v1").framework("tf").build_algo()
