"""``RLlibCallback``: hooks into an algorithm's life and its EnvRunners' episodes.

Subclass it, override the hooks you need and pass the class to ``config.callbacks(MyCallback)``
(a list of classes works too), or pass single functions: ``config.callbacks(on_episode_end=fn)``.
Every hook is called with keyword arguments only. Episode hooks run inside the EnvRunner actors:
their ``metrics_logger.log_value(key, value)`` calls show up in ``result["env_runners"][key]``
(and in ``result["evaluation"]["env_runners"]`` for evaluation runners).
"""

from __future__ import annotations

from typing import Any


class RLlibCallback:
    """All hooks are no-ops; override the ones you need (keep ``**kwargs`` in the signature)."""

    # --- in the driver (the Algorithm) ---------------------------------------------------------
    def on_algorithm_init(self, *, algorithm: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        """After the algorithm built its EnvRunners and learners."""

    def on_train_result(self, *, algorithm: Any, metrics_logger: Any = None, result: dict, **kwargs: Any) -> None:
        """After each ``train()`` iteration; ``result`` may be changed in place."""

    def on_evaluate_start(self, *, algorithm: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        """Before an evaluation starts."""

    def on_evaluate_end(self, *, algorithm: Any, metrics_logger: Any = None, evaluation_metrics: dict,
                        **kwargs: Any) -> None:
        """After an evaluation, with its results (may be changed in place)."""

    def on_env_runners_recreated(self, *, algorithm: Any, env_runner_group: Any, env_runner_indices: list[int],
                                 is_evaluation: bool, **kwargs: Any) -> None:
        """After failed EnvRunner actors were replaced by new ones."""

    def on_checkpoint_loaded(self, *, algorithm: Any, **kwargs: Any) -> None:
        """After the algorithm restored its state from a checkpoint."""

    # --- in the EnvRunners ---------------------------------------------------------------------
    def on_environment_created(self, *, env_runner: Any, metrics_logger: Any = None, env: Any,
                               env_context: Any, **kwargs: Any) -> None:
        """After an EnvRunner created one of its envs."""

    def on_episode_created(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                           env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        """A new episode object exists; its env has not been reset yet."""

    def on_episode_start(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                         env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        """After the env was reset for a new episode."""

    def on_episode_step(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                        env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        """After each env step was recorded in the episode (the last step too)."""

    def on_episode_end(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                       env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        """After the step that terminated or truncated the episode."""

    def on_sample_end(self, *, env_runner: Any = None, metrics_logger: Any = None, samples: Any,
                      **kwargs: Any) -> None:
        """At the end of ``EnvRunner.sample()``, with what it is about to return."""


#: Ray's older name (``from ray.rllib.algorithms.callbacks import DefaultCallbacks``)
DefaultCallbacks = RLlibCallback
