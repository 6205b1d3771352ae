"""Search-space primitives: ``tune.uniform(0, 1)``, ``tune.randint(2, 12)``, ``tune.choice``...

Each returns a ``Domain`` that knows its bounds and how to draw a value. Bounds are checked
when the domain is built, so an invalid space fails where it was written, before any
trial starts. ``grid_search`` is a marker dict (``{"grid_search": values}``), as in Ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def _rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _check_q(q: Any, name: str) -> None:
    if not isinstance(q, (int, float)) or isinstance(q, bool) or q <= 0:
        raise ValueError(f"tune.{name}: q={q!r} must be a number > 0")


class Domain:
    """A range of values to sample from; ``sample(spec, size, random_state)`` draws."""

    sampler: str = "uniform"
    quantum: float | None = None

    def sample(self, spec: Any = None, size: int = 1, random_state: Any = None) -> Any:
        values = [self._draw(spec, _rng(random_state)) for _ in range(size)]
        return values[0] if size == 1 else values

    def _draw(self, spec: Any, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def is_grid(self) -> bool:
        return False

    def is_function(self) -> bool:
        return False

    def is_valid(self, value: Any) -> bool:
        return True

    @property
    def domain_str(self) -> str:
        return repr(self)


class Float(Domain):
    """A float in ``[lower, upper)``, drawn uniformly, log-uniformly or normally."""

    def __init__(self, lower: float | None, upper: float | None):
        self.lower = lower
        self.upper = upper
        self.base = 10.0
        self.mean = 0.0
        self.sd = 1.0

    def uniform(self) -> Float:
        _check_bounds("uniform", self.lower, self.upper)
        self.sampler = "uniform"
        return self

    def loguniform(self, base: float = 10) -> Float:
        _check_bounds("loguniform", self.lower, self.upper)
        if self.lower <= 0:
            raise ValueError(f"tune.loguniform: lower={self.lower!r} must be > 0 (log of a non-positive number)")
        self.sampler, self.base = "loguniform", float(base)
        return self

    def normal(self, mean: float = 0.0, sd: float = 1.0) -> Float:
        if not isinstance(sd, (int, float)) or sd <= 0:
            raise ValueError(f"tune.randn: sd={sd!r} must be > 0")
        self.sampler, self.mean, self.sd = "normal", float(mean), float(sd)
        return self

    def quantized(self, q: float) -> Float:
        _check_q(q, "quantized")
        self.quantum = q
        return self

    def _draw(self, spec: Any, rng: np.random.Generator) -> float:
        if self.sampler == "normal":
            value = rng.normal(self.mean, self.sd)
        elif self.sampler == "loguniform":
            low, high = math.log(self.lower, self.base), math.log(self.upper, self.base)
            value = self.base ** rng.uniform(low, high)
        else:
            value = rng.uniform(self.lower, self.upper)
        if self.quantum is not None:
            value = round(value / self.quantum) * self.quantum
            if self.lower is not None:
                value = min(max(value, self.lower), self.upper)
        return float(value)

    def is_valid(self, value: Any) -> bool:
        if self.lower is None:
            return True
        return self.lower <= value <= self.upper

    def __repr__(self) -> str:
        if self.sampler == "normal":
            return f"Normal(mean={self.mean}, sd={self.sd})"
        return f"Float({self.sampler}, {self.lower}, {self.upper}{f', q={self.quantum}' if self.quantum else ''})"


class Integer(Domain):
    """An integer in ``[lower, upper)``, drawn uniformly or log-uniformly."""

    def __init__(self, lower: int, upper: int):
        self.lower = lower
        self.upper = upper
        self.base = 10.0

    def uniform(self) -> Integer:
        _check_bounds("randint", self.lower, self.upper)
        self.sampler = "uniform"
        return self

    def loguniform(self, base: float = 10) -> Integer:
        _check_bounds("lograndint", self.lower, self.upper)
        if self.lower <= 0:
            raise ValueError(f"tune.lograndint: lower={self.lower!r} must be > 0")
        self.sampler, self.base = "loguniform", float(base)
        return self

    def quantized(self, q: int) -> Integer:
        _check_q(q, "qrandint")
        if int(q) != q:
            raise ValueError(f"tune.qrandint: q={q!r} must be an integer")
        self.quantum = int(q)
        return self

    def _draw(self, spec: Any, rng: np.random.Generator) -> int:
        # The quantized forms include ``upper``, as in Ray.
        upper = self.upper + 1 if self.quantum is not None else self.upper
        if self.sampler == "loguniform":
            low, high = math.log(self.lower, self.base), math.log(upper, self.base)
            value = int(self.base ** rng.uniform(low, high))
        else:
            value = int(rng.integers(self.lower, upper))
        if self.quantum is not None:
            value = int(round(value / self.quantum) * self.quantum)
            value = min(max(value, self.lower), self.upper)
        return value

    def is_valid(self, value: Any) -> bool:
        return self.lower <= value <= self.upper

    def __repr__(self) -> str:
        return f"Integer({self.sampler}, {self.lower}, {self.upper}{f', q={self.quantum}' if self.quantum else ''})"


class Categorical(Domain):
    """One of ``categories``, drawn uniformly."""

    def __init__(self, categories: Sequence):
        if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence) or not len(categories):
            raise ValueError(f"tune.choice: categories={categories!r} must be a non-empty list")
        self.categories = list(categories)

    def _draw(self, spec: Any, rng: np.random.Generator) -> Any:
        return self.categories[int(rng.integers(len(self.categories)))]

    def is_valid(self, value: Any) -> bool:
        return value in self.categories

    def __len__(self) -> int:
        return len(self.categories)

    def __repr__(self) -> str:
        return f"Categorical({self.categories})"


class Function(Domain):
    """A value computed by ``func(spec)``, where ``spec.config`` is the rest of the trial's
    config (so ``sample_from(lambda spec: spec.config.a * 2)`` may depend on other keys)."""

    sampler = "function"

    def __init__(self, func: Callable):
        if not callable(func):
            raise ValueError(f"tune.sample_from: {func!r} is not callable")
        self.func = func

    def is_function(self) -> bool:
        return True

    def _draw(self, spec: Any, rng: np.random.Generator) -> Any:
        try:
            return self.func(spec)
        except TypeError:
            if _takes_no_arguments(self.func):
                return self.func()
            raise

    def __repr__(self) -> str:
        return f"Function({getattr(self.func, '__name__', self.func)})"


def _takes_no_arguments(func: Callable) -> bool:
    import inspect

    try:
        return not inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _check_bounds(name: str, lower: Any, upper: Any) -> None:
    for label, value in (("lower", lower), ("upper", upper)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"tune.{name}: {label}={value!r} must be a number")
    if lower >= upper:
        raise ValueError(f"tune.{name}: lower={lower!r} must be less than upper={upper!r}")


# --- the public constructors ---------------------------------------------------------------


def uniform(lower: float, upper: float) -> Float:
    """A float drawn uniformly from ``[lower, upper)``."""
    return Float(lower, upper).uniform()


def quniform(lower: float, upper: float, q: float) -> Float:
    """``uniform`` rounded to a multiple of ``q``."""
    return Float(lower, upper).uniform().quantized(q)


def loguniform(lower: float, upper: float, base: float = 10) -> Float:
    """A float whose logarithm is uniform in ``[log(lower), log(upper))``."""
    return Float(lower, upper).loguniform(base)


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Float:
    """``loguniform`` rounded to a multiple of ``q``."""
    return Float(lower, upper).loguniform(base).quantized(q)


def randn(mean: float = 0.0, sd: float = 1.0) -> Float:
    """A float from the normal distribution ``N(mean, sd)``."""
    return Float(None, None).normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Float:
    """``randn`` rounded to a multiple of ``q``."""
    return Float(None, None).normal(mean, sd).quantized(q)


def randint(lower: int, upper: int) -> Integer:
    """An integer in ``[lower, upper)`` (upper excluded)."""
    return Integer(lower, upper).uniform()


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """An integer in ``[lower, upper]`` (upper included) rounded to a multiple of ``q``."""
    return Integer(lower, upper).uniform().quantized(q)


def lograndint(lower: int, upper: int, base: float = 10) -> Integer:
    """An integer in ``[lower, upper)`` whose logarithm is uniform."""
    return Integer(lower, upper).loguniform(base)


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Integer:
    """``lograndint`` with upper included, rounded to a multiple of ``q``."""
    return Integer(lower, upper).loguniform(base).quantized(q)


def choice(categories: Sequence) -> Categorical:
    """One of ``categories``."""
    return Categorical(categories)


def sample_from(func: Callable) -> Function:
    """A value computed by ``func(spec)`` for each trial."""
    return Function(func)


def grid_search(values: Sequence) -> dict:
    """Try every value in ``values`` (combined with every other grid, × ``num_samples``)."""
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        raise ValueError(f"tune.grid_search: values={values!r} must be a list")
    if not len(values):
        raise ValueError("tune.grid_search: values must not be empty")
    return {"grid_search": list(values)}
