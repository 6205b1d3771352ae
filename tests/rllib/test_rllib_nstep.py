"""n-step returns (Ray's ``n_step`` training key): the replay buffers' n-step rows checked
against hand-computed numbers, the learners' gamma ** n bootstrap, the config checks, and
DQN with ``n_step=3`` learning CartPole on real EnvRunner actors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from rllib_helpers import TwoAgentGuessing, dqn_cartpole_config, train_until_greedy_return

from solray.rllib._internal.env_factory import resolve_env_creator
from solray.rllib._internal.module_specs import build_module_specs
from solray.rllib._internal.replay_buffer import PrioritizedReplayBuffer, ReplayBuffer
from solray.rllib.algorithms.dqn import DQNConfig
from solray.rllib.algorithms.sac import SACConfig
from solray.rllib.policy.policy import PolicySpec

G = 0.9


def steps(eps_id: int, ids: list[int], rewards: list[float], terminated_last: bool = False,
          truncated_last: bool = False) -> dict:
    """Consecutive steps of one episode; step ``i``'s obs is ``ids[i]`` and its next obs
    ``ids[i] + 0.5`` (so a row names the step it starts at and the step it bootstraps from)."""
    n = len(ids)
    terminateds, truncateds = np.zeros(n, bool), np.zeros(n, bool)
    terminateds[-1], truncateds[-1] = terminated_last, truncated_last
    return {"obs": np.asarray(ids, np.float32)[:, None], "new_obs": np.asarray(ids, np.float32)[:, None] + 0.5,
            "actions": np.asarray(ids, np.int64), "rewards": np.asarray(rewards, np.float32),
            "terminateds": terminateds, "truncateds": truncateds, "eps_id": np.full(n, eps_id, np.int64)}


def concat(*batches: dict) -> dict:
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def rows_by_start(buffer: ReplayBuffer, n_step, size: int = 4000) -> dict[int, tuple]:
    """Sample until every stored step was drawn; ``{start id: (reward, next id, terminated, m)}``."""
    sample = buffer.sample(size, n_step=n_step, gamma=G)
    out = {}
    for i in range(size):
        row = (float(sample["rewards"][i]), float(sample["new_obs"][i, 0]) - 0.5,
               bool(sample["terminateds"][i]), int(sample["n_step"][i]))
        start = int(sample["obs"][i, 0])
        assert sample["actions"][i] == start  # the first step's action
        if isinstance(n_step, int):
            assert out.setdefault(start, row) == pytest.approx(row)
        out.setdefault(start, row)
    return out


def test_nstep_stops_at_termination_and_truncation():
    buffer = ReplayBuffer(100, seed=0)
    # Episode 7 terminates after 4 steps; episode 8 is truncated after 2.
    buffer.add(concat(steps(7, [0, 1, 2, 3], [1, 2, 3, 4], terminated_last=True),
                      steps(8, [10, 11], [1, 1], truncated_last=True)))
    rows = rows_by_start(buffer, 3)
    assert rows[0] == pytest.approx((1 + G * 2 + G * G * 3, 2, False, 3))
    assert rows[1] == pytest.approx((2 + G * 3 + G * G * 4, 3, True, 3))
    assert rows[2] == pytest.approx((3 + G * 4, 3, True, 2))  # fewer steps, terminated: no bootstrap
    assert rows[3] == pytest.approx((4, 3, True, 1))
    assert rows[10] == pytest.approx((1 + G * 1, 11, False, 2))  # truncated: bootstraps from the last obs
    assert rows[11] == pytest.approx((1, 11, False, 1))
    # n_step=1 is the plain one-step transition.
    assert rows_by_start(buffer, 1)[0] == pytest.approx((1, 0, False, 1))


def test_nstep_links_follow_episode_ids_across_interleaved_fragments():
    buffer = ReplayBuffer(100, seed=0)
    # Two runners' episodes arrive in alternating fragments (as the runners' sample calls
    # return), and one add holds both episodes' steps in env-major order.
    a, b = 1 << 40 | 1, 2 << 40 | 1
    buffer.add(steps(a, [0, 1], [1, 1]))
    buffer.add(steps(b, [100, 101], [10, 10]))
    buffer.add(concat(steps(a, [2], [1]), steps(b, [102, 103], [10, 10])))
    buffer.add(steps(a, [3, 4], [1, 1], terminated_last=True))
    rows = rows_by_start(buffer, 3)
    for start in (0, 1):
        assert rows[start] == pytest.approx((1 + G + G * G, start + 2, False, 3))
    assert rows[2] == pytest.approx((1 + G + G * G, 4, True, 3))
    assert rows[3] == pytest.approx((1 + G, 4, True, 2))
    assert rows[101] == pytest.approx((10 + 10 * G + 10 * G * G, 103, False, 3))
    # Episode b's later steps are not stored yet: its newest rows bootstrap early.
    assert rows[102] == pytest.approx((10 + 10 * G, 103, False, 2))
    assert rows[103] == pytest.approx((10, 103, False, 1))
    # b continues: the row that stopped short now reaches further.
    buffer.add(steps(b, [104], [10]))
    assert rows_by_start(buffer, 3)[102] == pytest.approx((10 + 10 * G + 10 * G * G, 104, False, 3))
    # Only the unfinished episode is remembered.
    assert list(buffer.last_serial) == [b]


def test_ring_overwrite_invalidates_links_and_forgets_episodes():
    buffer = ReplayBuffer(4, seed=0)
    buffer.add(steps(1, [0, 1], [1, 1]))
    buffer.add(steps(2, [10, 11, 12, 13], [5, 5, 5, 5]))  # overwrites both of episode 1's steps
    assert 1 not in buffer.last_serial  # its newest step is gone: nothing to link to
    buffer.add(steps(1, [2], [1]))  # episode 1 continues in the slot of step 10
    rows = rows_by_start(buffer, 3)
    assert set(rows) == {2, 11, 12, 13}
    # No step links to episode 1's new step, and it starts a chain of its own.
    assert rows[13] == pytest.approx((5, 13, False, 1))
    assert rows[12] == pytest.approx((5 + 5 * G, 13, False, 2))
    assert rows[11] == pytest.approx((5 + 5 * G + 5 * G * G, 13, False, 3))
    assert rows[2] == pytest.approx((1, 2, False, 1))
    # The per-episode memory stays bounded by what the buffer holds, also for episodes that
    # never end (a runner abandoning them for evaluation).
    for e in range(100):
        buffer.add(steps(100 + e, [1000 + 2 * e, 1001 + 2 * e], [0, 0], terminated_last=e % 2 == 0))
    assert len(buffer.last_serial) <= 2
    assert rows_by_start(buffer, 3)[1198] == pytest.approx((0, 1199, False, 2))


def test_nstep_range_draws_each_row_uniformly():
    buffer = ReplayBuffer(100, seed=0)
    buffer.add(steps(3, list(range(10)), [1.0] * 10))
    sample = buffer.sample(3000, n_step=(2, 4), gamma=G)
    inner = sample["obs"][:, 0] < 6  # rows with at least four stored steps ahead
    counts = np.bincount(sample["n_step"][inner].astype(int), minlength=5)[2:]
    assert counts.sum() == inner.sum()
    np.testing.assert_allclose(counts / counts.sum(), [1 / 3] * 3, atol=0.05)
    m = sample["n_step"].astype(int)
    np.testing.assert_allclose(sample["rewards"], (1 - G ** m) / (1 - G), rtol=1e-5)
    np.testing.assert_array_equal(sample["new_obs"][:, 0], sample["obs"][:, 0] + m - 0.5)


def test_prioritized_buffer_returns_nstep_rows_with_weights():
    buffer = PrioritizedReplayBuffer(100, alpha=1.0, beta=1.0, seed=0)
    buffer.add(steps(5, [0, 1, 2, 3], [1, 2, 3, 4], terminated_last=True))
    buffer.update_priorities(np.arange(4), np.array([3.0, 1.0, 1.0, 1.0]))
    sample = buffer.sample(2000, n_step=3, gamma=G)
    first = sample["obs"][:, 0] == 0
    assert first.mean() == pytest.approx(0.5, abs=0.05)  # priority 3 of 6
    np.testing.assert_allclose(sample["weights"][first], 1 / 3, rtol=1e-3)
    np.testing.assert_allclose(sample["batch_indexes"], sample["obs"][:, 0])
    assert rows_by_start(buffer, 3)[1] == pytest.approx((2 + G * 3 + G * G * 4, 3, True, 3))


def test_buffer_state_round_trip_keeps_links():
    buffer = PrioritizedReplayBuffer(6, seed=0)
    buffer.add(steps(1, [0, 1, 2, 3], [1, 1, 1, 1]))
    buffer.add(steps(2, [10, 11, 12], [2, 2, 2]))  # wraps: slot 0 now holds step 12
    restored = PrioritizedReplayBuffer(6, seed=0)
    restored.set_state(copy.deepcopy(buffer.get_state()))
    assert rows_by_start(restored, 3) == rows_by_start(buffer, 3)
    for b in (buffer, restored):
        b.add(concat(steps(1, [4], [1]), steps(2, [13], [2], terminated_last=True)))
    rows = rows_by_start(restored, 3)
    assert rows == rows_by_start(buffer, 3)
    assert rows[11] == pytest.approx((2 + 2 * G + 2 * G * G, 13, True, 3))
    assert rows[3] == pytest.approx((1 + G, 4, False, 2))


def test_steps_without_episode_ids_stay_one_step():
    buffer = ReplayBuffer(10, seed=0)
    batch = steps(1, [0, 1, 2], [1, 1, 1])
    del batch["eps_id"]
    buffer.add(batch)
    assert rows_by_start(buffer, 3) == {i: pytest.approx((1, i, False, 1)) for i in range(3)}


@pytest.mark.parametrize("config_class, env", [(DQNConfig, "CartPole-v1"), (SACConfig, "Pendulum-v1")])
def test_learners_bootstrap_with_gamma_to_the_n(config_class, env):
    from solray.rllib.algorithms.dqn.dqn import DQN

    config = config_class().environment(env).training(gamma=G).rl_module(model_config={"fcnet_hiddens": [8]})
    algo_class = config.algo_class
    extras = object.__new__(algo_class).model_extras(config)
    specs, _ = build_module_specs(config, resolve_env_creator(env), algo_class.default_module_class,
                                  algo_class.__name__, algo_class.discrete_actions, extras)
    learner = algo_class.learner_class(config, specs)
    rng = np.random.default_rng(0)
    obs_dim = specs["default_policy"].observation_space.shape[0]
    action_space = specs["default_policy"].action_space
    batch = {"obs": rng.normal(size=(8, obs_dim)).astype(np.float32),
             "new_obs": rng.normal(size=(8, obs_dim)).astype(np.float32),
             "actions": (rng.integers(0, 2, 8) if algo_class is DQN
                         else rng.uniform(-1, 1, (8,) + action_space.shape).astype(np.float32)),
             "rewards": np.zeros(8, np.float32), "terminateds": np.array([False] * 7 + [True]),
             "weights": np.ones(8, np.float32), "batch_indexes": np.arange(8)}

    def targets(n_step):
        """q - td_error = the TD target, from a fresh copy of the learner and its RNG."""
        copied = copy.deepcopy(learner)
        torch.manual_seed(0)
        rows = dict(batch) if n_step is None else {**batch, "n_step": np.asarray(n_step, np.float32)}
        result = copied.update_module("default_policy", rows, timestep=0)
        q = copy.deepcopy(learner).module["default_policy"]
        obs, acts = torch.from_numpy(batch["obs"]), torch.from_numpy(batch["actions"])
        with torch.no_grad():
            q_taken = (q.q_values(obs).gather(1, acts.long().unsqueeze(1)).squeeze(1) if algo_class is DQN
                       else q.q(obs, acts))
        return q_taken.numpy() - result["_td_error"]

    one = targets(None)
    np.testing.assert_allclose(targets([1] * 8), one, rtol=1e-5, atol=1e-6)
    n = np.array([1, 2, 3, 1, 2, 3, 1, 3])
    expected = one * G ** (n - 1)
    expected[-1] = 0.0  # terminated: no bootstrap whatever n is
    np.testing.assert_allclose(targets(n), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, (0, 2), (3, 1), (1, 2, 3), [2, 1], (1.0, 2)])
def test_bad_n_step_is_rejected_naming_the_key(bad):
    with pytest.raises(ValueError, match="n_step"):
        DQNConfig().environment("CartPole-v1").training(n_step=bad).build_algo()


def test_n_step_config_types():
    with pytest.raises(TypeError, match="n_step"):
        SACConfig().training(n_step="3")
    assert DQNConfig().training(n_step=(1, 3)).n_step == (1, 3)
    assert SACConfig().training(n_step=3).n_step == 3


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_dqn_with_nstep_learns_cartpole(rl_cluster):
    # n-step TD errors start larger (Huber's linear part): a larger lr than n_step=1's test.
    algo = dqn_cartpole_config(lr=2e-3, n_step=3).build_algo()
    try:
        first, best, _ = train_until_greedy_return(algo, 150, iterations=8)
        replayed = algo.buffers["default_policy"].sample(256, n_step=3, gamma=0.99)
        assert set(np.unique(replayed["n_step"])) <= {1.0, 2.0, 3.0}
        assert (replayed["n_step"] == 3).mean() > 0.5  # the runner's steps chain into episodes
        assert best >= 150 > first, (first, best)
    finally:
        algo.stop()


def test_multi_agent_steps_chain_per_agent(rl_cluster, tmp_path):
    # Both agents feed one module's buffer, and episodes (10 steps) span several sample calls
    # (4 steps each): n-step rows must chain each agent's own steps. The agents observe
    # different constant vectors, so a row that bootstraps from its own first observation
    # stayed with its agent.
    config = (DQNConfig().environment(TwoAgentGuessing, env_config={"length": 10})
              .env_runners(num_env_runners=1, rollout_fragment_length=4)
              .multi_agent(policies={"shared": PolicySpec()}, policy_mapping_fn=lambda aid, episode, **kw: "shared")
              .training(n_step=3, num_steps_sampled_before_learning_starts=100, train_batch_size=16,
                        store_buffer_in_checkpoints=True)
              .rl_module(model_config={"fcnet_hiddens": [8]})
              .reporting(min_sample_timesteps_per_iteration=200)
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        assert "qf_loss" in algo.train()["learners"]["shared"]
        sample = algo.buffers["shared"].sample(1000, n_step=3, gamma=G)
        np.testing.assert_array_equal(sample["new_obs"], sample["obs"])
        # Rows shorten only at episode ends: 2 of each agent's 10 steps (or its unfinished tail).
        assert (sample["n_step"] == 3).mean() > 0.6
        assert sample["rewards"].max() <= 1 + G + G * G + 1e-6
        assert len(algo.buffers["shared"].last_serial) <= 2  # one unfinished episode per agent
        # The buffer and its episode links come back from a checkpoint.
        restored = type(algo).from_checkpoint(algo.save_to_path(str(tmp_path / "dqn")))
        try:
            before, after = algo.buffers["shared"], restored.buffers["shared"]
            np.testing.assert_array_equal(after.next_serial, before.next_serial)
            assert after.last_serial == before.last_serial and len(after) == len(before)
        finally:
            restored.stop()
    finally:
        algo.stop()
