"""Replay buffers for off-policy algorithms: a uniform ring buffer and a proportional
prioritized one (Schaul et al. 2016: sample with probability p^alpha, correct with
importance weights (N * P)^-beta normalised by their max).

Columns are NumPy arrays allocated on first add. The buffer stores single steps; n-step
returns are built at sample time by following each step's link to the next stored step of
its episode (``eps_id``), so one buffer serves any ``n_step`` and ``gamma``. ``sample``
returns the rows plus ``n_step`` (the steps each row spans), ``weights`` and
``batch_indexes`` (for priority updates).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solray.rllib.core.columns import Columns

COLUMNS = (Columns.OBS, Columns.NEXT_OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS)
# Bookkeeping per slot: which added step (counting from 0) the slot holds, the same number of
# the next stored step of its episode (-1: none yet), and the episode id (-1: none given).
_LINKS = ("serial", "next_serial", "eps_id")


class ReplayBuffer:
    def __init__(self, capacity: int, seed: int | None = None) -> None:
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        self.data: dict[str, np.ndarray] = {}
        self.serial = np.full(self.capacity, -1, np.int64)
        self.next_serial = np.full(self.capacity, -1, np.int64)
        self.eps_id = np.full(self.capacity, -1, np.int64)
        # The newest stored step of each episode that may still continue: only episodes that
        # have not ended and whose newest step is still stored, so it never outgrows capacity.
        self.last_serial: dict[int, int] = {}
        self.size = 0
        self.num_added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, np.ndarray]) -> None:
        """Store a batch of steps; each episode's steps must come in order (across calls too)."""
        total = len(batch[Columns.OBS])
        skip = max(0, total - self.capacity)  # rows a later row of this same batch would overwrite
        rows = {k: np.asarray(batch[k])[skip:] for k in COLUMNS}
        if not self.data:
            self.data = {k: np.zeros((self.capacity,) + v.shape[1:], v.dtype) for k, v in rows.items()}
        serials = self.num_added + skip + np.arange(total - skip)
        positions = serials % self.capacity
        self._forget_overwritten(positions)
        for key in COLUMNS:
            self.data[key][positions] = rows[key]
        self.serial[positions] = serials
        self.next_serial[positions] = -1
        if Columns.EPS_ID in batch:
            done = rows[Columns.TERMINATEDS].astype(bool)
            if Columns.TRUNCATEDS in batch:
                done |= np.asarray(batch[Columns.TRUNCATEDS], bool)[skip:]
            self._link(np.asarray(batch[Columns.EPS_ID], np.int64)[skip:], serials, done)
        else:
            self.eps_id[positions] = -1
        self._on_add(positions)
        self.size = min(self.capacity, self.size + len(positions))
        self.num_added += total

    def _forget_overwritten(self, positions: np.ndarray) -> None:
        for eps, serial in zip(self.eps_id[positions].tolist(), self.serial[positions].tolist(), strict=True):
            if self.last_serial.get(eps) == serial:
                del self.last_serial[eps]

    def _link(self, eps: np.ndarray, serials: np.ndarray, done: np.ndarray) -> None:
        """Point each new step's predecessor in its episode (stored earlier or in this batch) at it."""
        positions = serials % self.capacity
        self.eps_id[positions] = eps
        order = np.argsort(eps, kind="stable")  # each episode's rows together, still in time order
        same = eps[order[1:]] == eps[order[:-1]]
        linked = same & ~done[order[:-1]]
        self.next_serial[positions[order[:-1][linked]]] = serials[order[1:][linked]]
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        ends = np.concatenate((starts[1:], [len(order)])) - 1
        for first, last in zip(order[starts].tolist(), order[ends].tolist(), strict=True):
            episode = int(eps[first])
            previous = self.last_serial.pop(episode, None)
            if previous is not None:
                self.next_serial[previous % self.capacity] = serials[first]
            if not done[last]:
                self.last_serial[episode] = int(serials[last])

    def _on_add(self, positions: np.ndarray) -> None:
        pass

    def _pick(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rng.integers(0, self.size, n), np.ones(n, np.float32)

    def sample(self, n: int, n_step: int | tuple[int, int] | list[int] = 1,
               gamma: float = 0.99) -> dict[str, np.ndarray]:
        """``n`` rows; with ``n_step`` > 1 each row's reward is the discounted sum over up to
        ``n_step`` steps of its episode and ``new_obs`` the observation after the last of them
        (fewer steps where the episode ended or its later steps are not stored yet). A
        ``(low, high)`` range draws each row's n uniformly from the closed interval."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx, weights = self._pick(n)
        low, high = (n_step, n_step) if isinstance(n_step, int) else n_step
        wanted = self.rng.integers(low, high + 1, n) if low < high else np.full(n, high)
        data = self.data
        rewards = data[Columns.REWARDS][idx].astype(np.float64)
        terminated = data[Columns.TERMINATEDS][idx].astype(bool)
        steps = np.ones(n, np.int64)
        last = idx
        going = ~terminated
        for k in range(1, high):
            # The ring overwrites oldest first, so a stored step's successor is still stored.
            following = self.next_serial[last]
            slot = following % self.capacity
            going &= (wanted > k) & (following >= 0)
            if not going.any():
                break
            last = np.where(going, slot, last)
            rewards += np.where(going, gamma ** k * data[Columns.REWARDS][slot], 0.0)
            ended = going & data[Columns.TERMINATEDS][slot].astype(bool)
            terminated |= ended
            steps += going
            going &= ~ended
        out = {Columns.OBS: data[Columns.OBS][idx], Columns.ACTIONS: data[Columns.ACTIONS][idx],
               Columns.REWARDS: rewards.astype(data[Columns.REWARDS].dtype),
               Columns.NEXT_OBS: data[Columns.NEXT_OBS][last],
               Columns.TERMINATEDS: terminated.astype(data[Columns.TERMINATEDS].dtype),
               "n_step": steps.astype(np.float32)}
        out["weights"] = weights
        out["batch_indexes"] = idx
        return out

    def update_priorities(self, indexes: np.ndarray, td_errors: np.ndarray) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {"data": {k: v[:self.size] for k, v in self.data.items()},
                "links": {k: getattr(self, k)[:self.size] for k in _LINKS},
                "last_serial": [list(self.last_serial), list(self.last_serial.values())],
                "num_added": self.num_added}

    def set_state(self, state: dict[str, Any]) -> None:
        saved = state["data"]
        self.size = len(next(iter(saved.values()))) if saved else 0
        self.data = {k: np.zeros((self.capacity,) + v.shape[1:], v.dtype) for k, v in saved.items()}
        for key, value in saved.items():
            self.data[key][:self.size] = value
        for key in _LINKS:
            getattr(self, key)[:] = -1
            getattr(self, key)[:self.size] = state["links"][key]
        self.last_serial = dict(zip(*state["last_serial"], strict=True))
        self.num_added = state["num_added"]
        self._on_add(np.arange(self.size))


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
