"""``HyperOptSearch``: HyperOpt's Tree-structured Parzen Estimator behind the searcher interface."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from solray.tune.search._space import flatten_space, objective, unflatten
from solray.tune.search.sample import Categorical, Domain, Float, Integer
from solray.tune.search.searcher import Searcher


def _expression(hp: Any, path: str, d: Domain) -> Any:
    if isinstance(d, Categorical):
        return hp.choice(path, d.categories)
    q = d.quantum
    if isinstance(d, Float):
        if d.sampler == "normal":
            return hp.qnormal(path, d.mean, d.sd, q) if q else hp.normal(path, d.mean, d.sd)
        if d.sampler == "loguniform":
            low, high = math.log(d.lower), math.log(d.upper)
            return hp.qloguniform(path, low, high, q) if q else hp.loguniform(path, low, high)
        return hp.quniform(path, d.lower, d.upper, q) if q else hp.uniform(path, d.lower, d.upper)
    if isinstance(d, Integer):
        if d.sampler == "loguniform":
            return hp.qloguniform(path, math.log(d.lower), math.log(d.upper), q or 1)
        if q:
            return hp.quniform(path, d.lower, d.upper, q)
        return hp.randint(path, d.lower, d.upper)
    raise ValueError(f"HyperOptSearch cannot model param_space[{path}] = {d!r}")


class HyperOptSearch(Searcher):
    """Suggest configs with HyperOpt's TPE; ``n_initial_points`` random ones first."""

    def __init__(
        self,
        space: dict | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict] | None = None,
        n_initial_points: int = 20,
        random_state_seed: int | None = None,
        gamma: float = 0.25,
    ):
        try:
            import hyperopt  # noqa: F401
        except ImportError as e:  # an optional extra, as in Ray
            raise ImportError("HyperOptSearch needs hyperopt: pip install hyperopt") from e
        super().__init__(metric, mode)
        self._n_initial = n_initial_points
        self._gamma = gamma
        self._rng = np.random.default_rng(random_state_seed)
        self._points = list(points_to_evaluate or [])
        self._space: dict | None = None
        self._domains: dict[str, Domain] = {}
        self._constants: dict = {}
        self._trials: Any = None
        self._live: dict[str, dict] = {}
        if space:
            self._set_space(space)

    def _set_space(self, space: dict) -> None:
        from hyperopt import hp

        self._domains, self._constants = flatten_space(space, "HyperOptSearch")
        self._space = {path: _expression(hp, path, d) for path, d in self._domains.items()}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        super().set_search_properties(metric, mode, config)
        if self._space is None and config:
            self._set_space(config)
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        import hyperopt

        if self._space is None:
            raise ValueError("HyperOptSearch has no search space: pass space= or the Tuner's param_space")
        if self._metric is None or self._mode is None:
            raise ValueError("HyperOptSearch needs metric and mode (here or in TuneConfig)")
        if self._points:
            point = self._points.pop(0)
            return unflatten({**self._constants, **_complete(point, self._domains, self._rng)})
        if self._trials is None:
            self._trials = hyperopt.Trials()
            self._domain = hyperopt.Domain(lambda config: config, self._space)
        trials = self._trials
        new_ids = trials.new_trial_ids(1)
        trials.refresh()
        algo = hyperopt.tpe.suggest
        docs = algo(new_ids, self._domain, trials, int(self._rng.integers(2**31 - 1)),
                    n_startup_jobs=self._n_initial, gamma=self._gamma, verbose=False)
        trials.insert_trial_docs(docs)
        trials.refresh()
        doc = docs[0]
        self._live[trial_id] = doc
        spec = hyperopt.base.spec_from_misc(doc["misc"])
        ctrl = hyperopt.base.Ctrl(trials, current_trial=doc)
        memo = self._domain.memo_from_config(spec)
        hyperopt.utils.use_obj_for_literal_in_memo(self._domain.expr, ctrl, hyperopt.base.Ctrl, memo)
        values = hyperopt.pyll.rec_eval(self._domain.expr, memo=memo)
        flat = {path: _plain(values[path], self._domains[path]) for path in self._domains}
        return unflatten({**self._constants, **flat})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import hyperopt

        doc = self._live.pop(trial_id, None)
        if doc is None:
            return
        loss = None if error else objective(result, self._metric, self._mode)
        doc["refresh_time"] = hyperopt.utils.coarse_utcnow()
        if loss is None:
            doc["state"] = hyperopt.base.JOB_STATE_ERROR
            doc["misc"]["error"] = ("TrialError", "the trial failed or did not report the metric")
        else:
            doc["state"] = hyperopt.base.JOB_STATE_DONE
            doc["result"] = {"loss": loss, "status": "ok"}
        self._trials.refresh()


def _plain(value: Any, domain: Domain) -> Any:
    if isinstance(domain, Integer):
        return int(value)
    if isinstance(domain, Float):
        return float(value)
    return value.item() if isinstance(value, np.generic) else value


def _complete(point: dict, domains: dict[str, Domain], rng: np.random.Generator) -> dict:
    from solray.tune.search._space import flatten_point

    flat = flatten_point(point)
    for path, domain in domains.items():
        flat.setdefault(path, domain.sample(random_state=rng))
    return flat


__all__ = ["HyperOptSearch"]
