"""Replay buffers for off-policy algorithms: a uniform ring buffer and a proportional
prioritized one (Schaul et al. 2016: sample with probability p^alpha, correct with
importance weights (N * P)^-beta normalised by their max).

Columns are NumPy arrays allocated on first add; ``sample`` returns a dict of rows plus
``weights`` and ``batch_indexes`` (for priority updates).
"""

from __future__ import annotations

from typing import Any

import numpy as np

COLUMNS = ("obs", "new_obs", "actions", "rewards", "terminateds")


class ReplayBuffer:
    def __init__(self, capacity: int, seed: int | None = None) -> None:
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        self.data: dict[str, np.ndarray] = {}
        self.size = 0
        self.next_index = 0
        self.num_added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, np.ndarray]) -> None:
        n = len(batch["obs"])
        if not self.data:
            self.data = {k: np.zeros((self.capacity,) + np.asarray(batch[k]).shape[1:], np.asarray(batch[k]).dtype)
                         for k in COLUMNS}
        positions = (self.next_index + np.arange(n)) % self.capacity
        for key in COLUMNS:
            self.data[key][positions] = batch[key]
        self._on_add(positions)
        self.next_index = int((self.next_index + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)
        self.num_added += n

    def _on_add(self, positions: np.ndarray) -> None:
        pass

    def _pick(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rng.integers(0, self.size, n), np.ones(n, np.float32)

    def sample(self, n: int) -> dict[str, np.ndarray]:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx, weights = self._pick(n)
        out = {k: v[idx] for k, v in self.data.items()}
        out["weights"] = weights
        out["batch_indexes"] = idx
        return out

    def update_priorities(self, indexes: np.ndarray, td_errors: np.ndarray) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {"data": {k: v[:self.size] for k, v in self.data.items()}, "next_index": self.next_index,
                "num_added": self.num_added}

    def set_state(self, state: dict[str, Any]) -> None:
        self.data, self.size = {}, 0
        if state["data"]:
            self.add(state["data"])
        self.next_index, self.num_added = state["next_index"], state["num_added"]


class PrioritizedReplayBuffer(ReplayBuffer):
    def __init__(self, capacity: int, alpha: float = 0.6, beta: float = 0.4, seed: int | None = None) -> None:
        super().__init__(capacity, seed)
        self.alpha, self.beta = alpha, beta
        self.priorities = np.zeros(self.capacity, np.float64)
        self.max_priority = 1.0

    def _on_add(self, positions: np.ndarray) -> None:
        self.priorities[positions] = self.max_priority ** self.alpha

    def _pick(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.priorities[:self.size]
        probs = p / p.sum()
        idx = self.rng.choice(self.size, n, p=probs)
        weights = (self.size * probs[idx]) ** (-self.beta)
        return idx, (weights / weights.max()).astype(np.float32)

    def update_priorities(self, indexes: np.ndarray, td_errors: np.ndarray) -> None:
        priority = np.abs(td_errors) + 1e-6
        self.priorities[indexes] = priority ** self.alpha
        self.max_priority = max(self.max_priority, float(priority.max()))


def make_replay_buffer(config: dict, seed: int | None) -> ReplayBuffer:
    """From Ray's ``replay_buffer_config`` ({"type": ..., "capacity": ..., "alpha", "beta"})."""
    kind = str(config.get("type", "EpisodeReplayBuffer"))
    capacity = int(config.get("capacity", 50_000))
    if "Prioritized" in kind:
        return PrioritizedReplayBuffer(capacity, config.get("alpha", 0.6), config.get("beta", 0.4), seed)
    if "Replay" not in kind:
        raise ValueError(f"Unknown replay buffer type {kind!r}; use 'EpisodeReplayBuffer' or "
                         "'PrioritizedEpisodeReplayBuffer'")
    return ReplayBuffer(capacity, seed)
