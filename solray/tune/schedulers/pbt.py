"""Population Based Training: every ``perturbation_interval``, a trial in the bottom
quantile copies the checkpoint of a trial in the top quantile (exploit) and continues
with that trial's hyperparameters perturbed (explore)."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

from solray.tune.schedulers.trial_scheduler import TrialScheduler
from solray.tune.search.sample import Domain


def explore(
    config: dict,
    mutations: dict,
    resample_probability: float,
    perturbation_factors: tuple[float, float],
    rng: random.Random,
) -> dict:
    """A perturbed copy of ``config``: each mutated key is resampled with
    ``resample_probability``, else moved (lists: to a neighbouring entry; numbers: times a
    perturbation factor)."""
    new = copy.deepcopy(config)
    for key, spec in mutations.items():
        if isinstance(spec, dict):
            new[key] = explore(config.get(key, {}), spec, resample_probability, perturbation_factors, rng)
            continue
        current = config.get(key)
        resample = rng.random() < resample_probability
        if isinstance(spec, (list, tuple)):
            if resample or current not in spec:
                new[key] = rng.choice(list(spec))
            else:
                index = list(spec).index(current) + rng.choice([-1, 1])
                new[key] = spec[min(max(index, 0), len(spec) - 1)]
        elif isinstance(spec, Domain) or callable(spec):
            if resample or not isinstance(current, (int, float)):
                new[key] = _draw(spec, rng)
            else:
                factor = rng.choice(list(perturbation_factors))
                value = current * factor
                new[key] = int(value) if isinstance(current, int) and not isinstance(current, bool) else value
        else:
            raise ValueError(
                f"PopulationBasedTraining: hyperparam_mutations[{key!r}] must be a list, a tune search "
                f"space (tune.uniform, ...), a function or a dict, got {spec!r}"
            )
    return new


def _draw(spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, Domain):
        return spec.sample(random_state=rng.randrange(2**31))
    return spec()


class PopulationBasedTraining(TrialScheduler):
    """Exploit/explore at every ``perturbation_interval`` (in ``time_attr`` units)."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: dict | None = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, float] = (1.2, 0.8),
        custom_explore_fn: Callable[[dict], dict] | None = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
        seed: int | None = None,
    ):
        super().__init__(metric, mode, time_attr)
        if not hyperparam_mutations and custom_explore_fn is None:
            raise ValueError("PopulationBasedTraining needs hyperparam_mutations or custom_explore_fn")
        if perturbation_interval <= 0:
            raise ValueError(f"PopulationBasedTraining(perturbation_interval={perturbation_interval!r}): must be > 0")
        if not 0 <= quantile_fraction <= 0.5:
            raise ValueError(f"PopulationBasedTraining(quantile_fraction={quantile_fraction!r}): must be in [0, 0.5]")
        if not 0 <= resample_probability <= 1:
            raise ValueError(
                f"PopulationBasedTraining(resample_probability={resample_probability!r}): must be in [0, 1]")
        self._interval = perturbation_interval
        self._burn_in = burn_in_period
        self._mutations = hyperparam_mutations or {}
        self._quantile = quantile_fraction
        self._resample = resample_probability
        self._factors = perturbation_factors
        self._explore_fn = custom_explore_fn
        self._require_attrs = require_attrs
        self._rng = random.Random(seed)
        self._last_perturbed: dict[str, float] = {}
        self._scores: dict[str, float] = {}
        self._trials: dict[str, Any] = {}
        self.num_perturbations = 0
        #: (time, trial_id, donor_id, old_config, new_config) for each exploit.
        self.history: list[tuple] = []

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._require_metric()
        self._trials[trial.trial_id] = trial
        self._last_perturbed[trial.trial_id] = 0.0
        for key, spec in self._mutations.items():
            if key not in trial.config and not isinstance(spec, dict):
                # Keys only named in the mutations start from a random value, as in Ray.
                trial.config[key] = self._rng.choice(list(spec)) if isinstance(spec, (list, tuple)) else _draw(
                    spec, self._rng)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result or (score := self._score(result)) is None:
            if self._require_attrs and self._time_attr not in result:
                raise ValueError(
                    f"PopulationBasedTraining: the result has no {self._time_attr!r} (time_attr); "
                    f"it reported {sorted(result)}")
            return self.CONTINUE
        self._trials.setdefault(trial.trial_id, trial)
        time = result[self._time_attr]
        self._scores[trial.trial_id] = score
        if time < self._burn_in or time - self._last_perturbed.get(trial.trial_id, 0.0) < self._interval:
            return self.CONTINUE
        self._last_perturbed[trial.trial_id] = time
        lower, upper = self.quantiles()
        if trial.trial_id not in {t.trial_id for t in lower} or not upper:
            return self.CONTINUE
        donors = [t for t in upper if t.checkpoint is not None]
        if not donors:
            return self.CONTINUE  # nothing to copy yet: the top trials have not checkpointed
        donor = self._rng.choice(donors)
        new_config = (
            self._explore_fn(copy.deepcopy(donor.config)) if self._explore_fn is not None
            else explore(donor.config, self._mutations, self._resample, self._factors, self._rng)
        )
        self.num_perturbations += 1
        self.history.append((time, trial.trial_id, donor.trial_id, copy.deepcopy(trial.config), new_config))
        self._scores[trial.trial_id] = self._scores[donor.trial_id]
        if tune_controller is not None:
            tune_controller.restart_trial(trial, config=new_config, checkpoint=donor.checkpoint)
        return self.NOOP

    def quantiles(self) -> tuple[list, list]:
        """(bottom, top) trials by their latest score; each ``quantile_fraction`` of them
        (at most half)."""
        live = [self._trials[tid] for tid in self._scores
                if tid in self._trials and self._trials[tid].status in ("RUNNING", "PAUSED", "PENDING")]
        if len(live) <= 1:
            return [], []
        ranked = sorted(live, key=lambda t: self._scores[t.trial_id])
        count = min(int(math.ceil(len(ranked) * self._quantile)), len(ranked) // 2)
        if count == 0:
            return [], []
        return ranked[:count], ranked[-count:]

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict | None) -> None:
        self._scores.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._scores.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return f"PopulationBasedTraining: {self.num_perturbations} perturbs"
