"""``OptunaSearch``: Optuna's samplers (TPE by default) behind the searcher interface."""

from __future__ import annotations

from typing import Any

from solray.tune.search._space import flatten_point, flatten_space, unflatten
from solray.tune.search.sample import Categorical, Domain, Float, Integer
from solray.tune.search.searcher import Searcher


def _distribution(optuna: Any, path: str, domain: Domain) -> Any:
    dist = optuna.distributions
    if isinstance(domain, Categorical):
        return dist.CategoricalDistribution(domain.categories)
    if isinstance(domain, Float) and domain.sampler in ("uniform", "loguniform"):
        log = domain.sampler == "loguniform"
        return dist.FloatDistribution(domain.lower, domain.upper, log=log, step=None if log else domain.quantum)
    if isinstance(domain, Integer):
        log = domain.sampler == "loguniform"
        # Unquantized randint excludes ``upper``; Optuna's bounds are inclusive.
        high = domain.upper if domain.quantum is not None else domain.upper - 1
        step = 1 if log else (domain.quantum or 1)
        return dist.IntDistribution(domain.lower, high, log=log, step=step)
    raise ValueError(f"OptunaSearch cannot model param_space[{path}] = {domain!r} (a normal distribution)")


class OptunaSearch(Searcher):
    """Suggest configs with an Optuna study (ask/tell).

    ``space`` may be given here (a dict of Domains or Optuna distributions) or come from
    the Tuner's ``param_space``; ``points_to_evaluate`` are enqueued first.
    """

    def __init__(
        self,
        space: dict | None = None,
        metric: str | list | None = None,
        mode: str | list | None = None,
        points_to_evaluate: list[dict] | None = None,
        sampler: Any = None,
        seed: int | None = None,
        evaluated_rewards: list | None = None,
    ):
        try:
            import optuna
        except ImportError as e:  # an optional extra, as in Ray
            raise ImportError("OptunaSearch needs optuna: pip install optuna") from e
        super().__init__(metric, mode)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self._sampler = sampler or optuna.samplers.TPESampler(seed=seed)
        self._points = list(points_to_evaluate or [])
        self._rewards = evaluated_rewards
        self._space: dict | None = None
        self._constants: dict = {}
        self._study = None
        self._live: dict[str, Any] = {}
        if space:
            self._set_space(space)

    def _set_space(self, space: dict) -> None:
        domains, self._constants = flatten_space(space, "OptunaSearch")
        optuna = self._optuna
        self._space = {
            path: d if isinstance(d, optuna.distributions.BaseDistribution) else _distribution(optuna, path, d)
            for path, d in domains.items()
        }
        for path, value in list(self._constants.items()):
            if isinstance(value, optuna.distributions.BaseDistribution):
                self._space[path] = self._constants.pop(path)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        super().set_search_properties(metric, mode, config)
        if self._space is None and config:
            self._set_space(config)
        return True

    def _ensure_study(self) -> Any:
        if self._study is None:
            if self._space is None:
                raise ValueError("OptunaSearch has no search space: pass space= or the Tuner's param_space")
            if self._metric is None or self._mode is None:
                raise ValueError("OptunaSearch needs metric and mode (here or in TuneConfig)")
            direction = "minimize" if self._mode == "min" else "maximize"
            self._study = self._optuna.create_study(sampler=self._sampler, direction=direction)
            for i, point in enumerate(self._points):
                flat = flatten_point(point)
                if self._rewards is not None:
                    trial = self._optuna.trial.create_trial(
                        params=flat, distributions={k: self._space[k] for k in flat}, value=self._rewards[i])
                    self._study.add_trial(trial)
                else:
                    self._study.enqueue_trial(flat)
        return self._study

    def suggest(self, trial_id: str) -> dict | str | None:
        study = self._ensure_study()
        trial = study.ask(fixed_distributions=self._space)
        self._live[trial_id] = trial
        return unflatten({**self._constants, **trial.params})

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._live.get(trial_id)
        if trial is not None and self._metric in result and "training_iteration" in result:
            trial.report(float(result[self._metric]), int(result["training_iteration"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self._live.pop(trial_id, None)
        if trial is None:
            return
        states = self._optuna.trial.TrialState
        if error or not result or self._metric not in result:
            self._study.tell(trial, state=states.FAIL)
        else:
            self._study.tell(trial, float(result[self._metric]))

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None) -> None:
        study = self._ensure_study()
        flat = flatten_point(parameters)
        states = self._optuna.trial.TrialState
        state = states.FAIL if error else states.PRUNED if pruned else states.COMPLETE
        trial = self._optuna.trial.create_trial(
            params=flat, distributions={k: self._space[k] for k in flat},
            value=None if error else value, state=state,
            intermediate_values=dict(enumerate(intermediate_values or [])))
        study.add_trial(trial)

    def get_state(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_optuna")
        state["_live"] = {}  # asked trials of a killed run are not told again
        return state

    def set_state(self, state: dict) -> None:
        import optuna

        self.__dict__.update(state)
        self._optuna = optuna

    def __getstate__(self) -> dict:
        return self.get_state()

    def __setstate__(self, state: dict) -> None:
        self.set_state(state)


__all__ = ["OptunaSearch"]
