"""V-trace (Espeholt et al. 2018, "IMPALA", section 4.1): off-policy value targets and
policy-gradient advantages for steps sampled by an older (behaviour) policy.

Works on the env-major fragments EnvRunners return: a step ends its chain where its episode
ended or its fragment piece was cut (``chain_ends``); there the next state's value is
bootstrapped from ``next_values`` unless the episode *terminated*.
"""

from __future__ import annotations

import numpy as np


def vtrace(behaviour_logp: np.ndarray, target_logp: np.ndarray, rewards: np.ndarray, values: np.ndarray,
           next_values: np.ndarray, terminateds: np.ndarray, chain_ends: np.ndarray, gamma: float,
           clip_rho_threshold: float | None = 1.0, clip_pg_rho_threshold: float | None = 1.0,
           lambda_: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(vs, pg_advantages)`` for each step.

    With ratio ``pi/mu``, ``rho = min(rho_bar, ratio)``, ``c = lambda * min(1, ratio)`` and
    ``delta_t = rho_t (r_t + gamma V(x_{t+1}) - V(x_t))``:
    ``vs_t = V(x_t) + delta_t + gamma c_t (vs_{t+1} - V(x_{t+1}))`` and
    ``pg_advantage_t = min(pg_rho_bar, ratio) (r_t + gamma vs_{t+1} - V(x_t))``.
    """
    ends = np.array(chain_ends, bool)
    ends[-1:] = True  # a batch cut mid-chain bootstraps its last step
    ratio = np.exp(np.asarray(target_logp, np.float64) - np.asarray(behaviour_logp, np.float64))
    rho = ratio if clip_rho_threshold is None else np.minimum(clip_rho_threshold, ratio)
    pg_rho = ratio if clip_pg_rho_threshold is None else np.minimum(clip_pg_rho_threshold, ratio)
    keep = np.where(ends, 0.0, gamma * lambda_ * np.minimum(1.0, ratio))
    values = np.asarray(values, np.float64)
    bootstrap = np.where(terminateds, 0.0, np.asarray(next_values, np.float64))
    deltas = rho * (rewards + gamma * bootstrap - values)
    corrections = np.empty_like(deltas)  # vs_t - V(x_t)
    acc = 0.0
    for t in range(len(deltas) - 1, -1, -1):
        acc = deltas[t] + keep[t] * acc
        corrections[t] = acc
    vs = values + corrections
    # vs_{t+1} inside a chain; the bootstrap value where the chain ends
    next_vs = bootstrap.copy()
    inside = ~ends[:-1]
    next_vs[:-1][inside] = vs[1:][inside]
    pg_advantages = pg_rho * (rewards + gamma * next_vs - values)
    return vs.astype(np.float32), pg_advantages.astype(np.float32)
