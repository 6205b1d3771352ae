"""Search spaces and search algorithms as pure logic: no cluster."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solray import tune
from solray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher
from solray.tune.search.variant_generator import validate_space


def draws(domain, n=400, seed=0):
    rng = np.random.default_rng(seed)
    return [domain.sample(random_state=rng) for _ in range(n)]


def test_float_domains_respect_bounds_and_quantum():
    values = draws(tune.uniform(2, 3))
    assert all(2 <= v < 3 for v in values) and len(set(values)) > 300
    q = draws(tune.quniform(0, 1, 0.25))
    assert set(q) <= {0.0, 0.25, 0.5, 0.75, 1.0} and len(set(q)) >= 4
    logs = draws(tune.loguniform(1e-4, 1e-1))
    assert all(1e-4 <= v < 1e-1 for v in logs)
    # log-uniform: about a third of the draws in each decade
    assert 80 < sum(v < 1e-3 for v in logs) < 190
    ql = draws(tune.qloguniform(1, 100, 5))
    assert all(v % 5 == 0 or v == 1 for v in ql)
    normal = draws(tune.randn(10, 2), n=2000)
    assert abs(np.mean(normal) - 10) < 0.2 and abs(np.std(normal) - 2) < 0.2
    qn = draws(tune.qrandn(0, 1, 0.5))
    assert all(math.isclose(v / 0.5, round(v / 0.5)) for v in qn)


def test_integer_domains():
    ints = draws(tune.randint(2, 12))
    assert set(ints) == set(range(2, 12)) and all(isinstance(v, int) for v in ints)  # upper excluded
    qints = draws(tune.qrandint(0, 10, 5))
    assert set(qints) == {0, 5, 10}  # upper included
    log_ints = draws(tune.lograndint(1, 1000))
    assert all(1 <= v < 1000 for v in log_ints) and sum(v < 10 for v in log_ints) > 80
    qlog = draws(tune.qlograndint(1, 100, 10))
    assert all(v % 10 == 0 or v == 1 for v in qlog) and max(qlog) <= 100


def test_choice_and_sample_from_reading_other_keys():
    assert set(draws(tune.choice(["a", "b", "c"]))) == {"a", "b", "c"}
    gen = BasicVariantGenerator(random_state=0)
    space = {"a": tune.randint(1, 5), "nested": {"double": tune.sample_from(lambda spec: spec.config.a * 2)},
             "const": 7}
    gen.set_search_properties(None, None, space, num_samples=5)
    configs = [gen.suggest(str(i)) for i in range(5)]
    assert gen.suggest("x") == Searcher.FINISHED
    for c in configs:
        assert c["nested"]["double"] == 2 * c["a"] and c["const"] == 7


def test_grid_times_num_samples_nested():
    gen = BasicVariantGenerator(random_state=1)
    space = {"opt": {"lr": tune.grid_search([0.1, 0.01])}, "layers": tune.grid_search([1, 2, 3]),
             "seed": tune.randint(0, 10**6)}
    gen.set_search_properties(None, None, space, num_samples=2)
    assert gen.total_samples == 12
    configs = []
    while (c := gen.suggest(str(len(configs)))) != Searcher.FINISHED:
        configs.append(c)
    assert len(configs) == 12
    combos = [(c["opt"]["lr"], c["layers"]) for c in configs]
    assert sorted(set(combos)) == sorted((lr, n) for lr in (0.1, 0.01) for n in (1, 2, 3))
    assert all(combos.count(k) == 2 for k in set(combos))
    assert len({c["seed"] for c in configs}) > 6  # fresh draws per sample


def test_points_to_evaluate_come_first_and_count():
    gen = BasicVariantGenerator(points_to_evaluate=[{"a": 100}, {"a": 200, "b": 1}], random_state=0)
    gen.set_search_properties(None, None, {"a": tune.randint(0, 10), "b": tune.choice([5, 6])}, num_samples=3)
    configs = [gen.suggest(str(i)) for i in range(3)]
    assert gen.suggest("x") == Searcher.FINISHED
    assert configs[0]["a"] == 100 and configs[0]["b"] in (5, 6)
    assert configs[1] == {"a": 200, "b": 1}
    assert 0 <= configs[2]["a"] < 10


@pytest.mark.parametrize("make, message", [
    (lambda: tune.uniform(3, 1), "lower=3 must be less than upper=1"),
    (lambda: tune.loguniform(0, 1), "must be > 0"),
    (lambda: tune.randint(5, 5), "lower=5 must be less than upper=5"),
    (lambda: tune.quniform(0, 1, 0), "q=0 must be a number > 0"),
    (lambda: tune.choice([]), "non-empty list"),
    (lambda: tune.grid_search([]), "must not be empty"),
    (lambda: tune.sample_from(3), "not callable"),
    (lambda: tune.randn(0, -1), "sd=-1 must be > 0"),
    (lambda: validate_space({"a": {"grid_search": 3}}), "param_space[a]: grid_search needs a non-empty list"),
    (lambda: validate_space([1, 2]), "param_space must be a dict"),
])
def test_invalid_spaces_name_the_problem(make, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


class _Recorder(Searcher):
    def __init__(self):
        super().__init__(metric="m", mode="max")
        self.n = 0
        self.completed = []

    def suggest(self, trial_id):
        self.n += 1
        return {"i": self.n}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append((trial_id, result))


def test_concurrency_limiter_holds_back_until_trials_finish():
    inner = _Recorder()
    limited = ConcurrencyLimiter(inner, max_concurrent=2)
    assert limited.suggest("t1") == {"i": 1} and limited.suggest("t2") == {"i": 2}
    assert limited.suggest("t3") is None
    limited.on_trial_complete("t1", {"m": 1})
    assert limited.suggest("t3") == {"i": 3}
    assert inner.completed == [("t1", {"m": 1})]
    with pytest.raises(ValueError, match="max_concurrent"):
        ConcurrencyLimiter(inner, max_concurrent=0)


def test_repeater_repeats_and_reports_the_mean():
    inner = _Recorder()
    rep = Repeater(inner, repeat=3)
    configs = [rep.suggest(f"t{i}") for i in range(3)]
    assert [c["i"] for c in configs] == [1, 1, 1]
    assert [c["__trial_index__"] for c in configs] == [0, 1, 2]
    assert rep.suggest("t3")["i"] == 2
    for i, value in enumerate([1.0, 2.0, 6.0]):
        rep.on_trial_complete(f"t{i}", {"m": value})
    assert len(inner.completed) == 1 and inner.completed[0][1]["m"] == pytest.approx(3.0)


def _optimise(searcher, n=30):
    searcher.set_search_properties("loss", "min", {"x": tune.uniform(-5, 5), "k": tune.choice(["a", "b"]),
                                                    "n": tune.randint(1, 4), "fixed": 1})
    best = math.inf
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        assert -5 <= config["x"] <= 5 and config["k"] in ("a", "b") and 1 <= config["n"] < 4
        assert config["fixed"] == 1
        loss = (config["x"] - 2) ** 2 + (0 if config["k"] == "b" else 1)
        best = min(best, loss)
        searcher.on_trial_complete(f"t{i}", {"loss": loss})
    return best


def test_optuna_search_learns():
    from solray.tune.search.optuna import OptunaSearch

    assert _optimise(OptunaSearch(seed=0)) < 0.5
    with pytest.raises(ValueError, match="grid_search"):
        OptunaSearch().set_search_properties("m", "min", {"a": tune.grid_search([1, 2])})
    searcher = OptunaSearch(points_to_evaluate=[{"x": 1.5, "k": "a", "n": 2}], seed=0)
    searcher.set_search_properties("loss", "min", {"x": tune.uniform(-5, 5), "k": tune.choice(["a", "b"]),
                                                    "n": tune.randint(1, 4)})
    assert searcher.suggest("first") == {"x": 1.5, "k": "a", "n": 2}


def test_hyperopt_search_learns():
    from solray.tune.search.hyperopt import HyperOptSearch

    assert _optimise(HyperOptSearch(random_state_seed=0, n_initial_points=8)) < 0.5
