"""The searcher interface (Ray's ``Searcher``) and the wrappers that limit or repeat one.

A searcher is asked for a config per new trial (``suggest``) and told about results; it
returns ``None`` when it has nothing to suggest yet and ``Searcher.FINISHED`` when it never
will again. The Tuner stops asking after ``num_samples`` trials.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

from solray.tune._internal.objective import Objective


class Searcher(Objective):
    """Base class for search algorithms; subclasses implement ``suggest`` and the callbacks."""

    FINISHED = "FINISHED"

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take the Tuner's metric, mode and space where the searcher has none of its own."""
        if self._metric is None and metric is not None:
            self._metric = metric
        if self._mode is None and mode is not None:
            self._mode = mode
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        raise NotImplementedError

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not take already evaluated points")

    def get_state(self) -> dict:
        return copy.copy(self.__dict__)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


class ConcurrencyLimiter(Searcher):
    """At most ``max_concurrent`` of ``searcher``'s suggestions live at once (``batch``:
    wait until the whole batch is done before suggesting the next)."""

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False):
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"ConcurrencyLimiter(max_concurrent={max_concurrent!r}): must be an integer >= 1")
        super().__init__(searcher.metric, searcher.mode)
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = batch
        self.live_trials: set[str] = set()
        self._ended_in_batch = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def suggest(self, trial_id: str) -> dict | str | None:
        if len(self.live_trials) >= self.max_concurrent:
            return None
        if self.batch and self._ended_in_batch:
            return None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.live_trials.add(trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.live_trials:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.live_trials:
            return
        self.searcher.on_trial_complete(trial_id, result, error)
        self.live_trials.discard(trial_id)
        if self.batch:
            self._ended_in_batch += 1
            if not self.live_trials:
                self._ended_in_batch = 0


class Repeater(Searcher):
    """Run each of ``searcher``'s configs ``repeat`` times and give it the mean of the
    repeats' results (for noisy objectives). ``set_index`` adds ``__trial_index__``."""

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True):
        if not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"Repeater(repeat={repeat!r}): must be an integer >= 1")
        super().__init__(searcher.metric, searcher.mode)
        self.searcher = searcher
        self.repeat = repeat
        self._set_index = set_index
        self._groups: list[dict] = []  # {"id", "config", "members", "results"}
        self._group_of: dict[str, dict] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def suggest(self, trial_id: str) -> dict | str | None:
        group = self._groups[-1] if self._groups else None
        if group is None or len(group["members"]) >= self.repeat:
            config = self.searcher.suggest(f"repeat_{len(self._groups)}_{trial_id}")
            if not isinstance(config, dict):
                return config
            group = {"id": f"repeat_{len(self._groups)}_{trial_id}", "config": config, "members": [], "results": []}
            self._groups.append(group)
        group["members"].append(trial_id)
        self._group_of[trial_id] = group
        config = copy.deepcopy(group["config"])
        if self._set_index:
            config["__trial_index__"] = len(group["members"]) - 1
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        group = self._group_of.get(trial_id)
        if group is None:
            return
        group["results"].append(None if error else result)
        if len(group["results"]) < self.repeat:
            return
        good = [r for r in group["results"] if r and self.metric in r]
        if not good:
            self.searcher.on_trial_complete(group["id"], None, error=True)
            return
        mean = dict(good[-1])
        mean[self.metric] = sum(r[self.metric] for r in good) / len(good)
        self.searcher.on_trial_complete(group["id"], mean)
