"""``PolicySpec``: how ``config.multi_agent(policies={...})`` describes one policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PolicySpec:
    """Spaces (None: taken from the env's agents mapped to it) and per-policy config overrides."""

    policy_class: Any = None
    observation_space: Any = None
    action_space: Any = None
    config: dict | None = None
