"""Turning a ``param_space`` into concrete trial configs: grids × ``num_samples``, random
draws for every ``Domain``, and ``sample_from`` functions that may read the rest of the
config. ``BasicVariantGenerator`` (the default searcher) is built on these helpers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np

from solray.tune.search.sample import Domain, Function
from solray.tune.search.searcher import Searcher

Path = tuple


class DotDict(dict):
    """A dict whose keys read as attributes, so ``spec.config.lr`` works in ``sample_from``."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return DotDict(value) if isinstance(value, dict) and not isinstance(value, DotDict) else value


def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "grid_search" in value


def walk(space: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every leaf to resolve: ``(path, Domain or grid dict)``, through nested dicts and lists."""
    if is_grid(space) or isinstance(space, Domain):
        yield prefix, space
    elif isinstance(space, dict):
        for key, value in space.items():
            yield from walk(value, prefix + (key,))
    elif isinstance(space, list):
        for index, value in enumerate(space):
            yield from walk(value, prefix + (index,))


def validate_space(space: Any) -> None:
    """Raise ``ValueError`` naming the first malformed entry of a ``param_space``."""
    if space is None:
        return
    if not isinstance(space, dict):
        raise TypeError(f"param_space must be a dict, got {type(space).__name__}")
    for path, leaf in walk(space):
        if is_grid(leaf):
            values = leaf["grid_search"]
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(
                    f"param_space[{_path_str(path)}]: grid_search needs a non-empty list, got {values!r}"
                )
    for key in _dict_keys(space):
        if not isinstance(key, (str, int)):
            raise ValueError(f"param_space keys must be strings, got {key!r}")


def _dict_keys(space: Any) -> Iterator[Any]:
    if isinstance(space, dict):
        for key, value in space.items():
            yield key
            yield from _dict_keys(value)


def _path_str(path: Path) -> str:
    return "/".join(str(p) for p in path) or "<root>"


def get_path(config: Any, path: Path) -> Any:
    for key in path:
        config = config[key]
    return config


def set_path(config: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def grid_paths(space: Any) -> list[tuple[Path, list]]:
    return [(path, list(leaf["grid_search"])) for path, leaf in walk(space) if is_grid(leaf)]


def count_grid(space: Any) -> int:
    size = 1
    for _, values in grid_paths(space):
        size *= len(values)
    return size


def resolve(space: Any, grid_values: dict[Path, Any], rng: np.random.Generator, base: dict | None = None) -> dict:
    """One concrete config: grid entries from ``grid_values``, fixed values from ``base``
    (points to evaluate), then random draws, then ``sample_from`` functions."""
    config = _copy_space(space)
    for path, value in grid_values.items():
        set_path(config, path, value)
    if base:
        _overlay(config, base)
    functions = []
    for path, leaf in list(walk(config)):
        if isinstance(leaf, Function):
            functions.append(path)
        elif isinstance(leaf, Domain):
            set_path(config, path, leaf.sample(random_state=rng))
    _resolve_functions(config, functions, rng)
    return config


def _copy_space(space: Any) -> Any:
    # Domains are shared (immutable once built); containers are copied.
    if isinstance(space, dict):
        return {k: _copy_space(v) for k, v in space.items()}
    if isinstance(space, list):
        return [_copy_space(v) for v in space]
    if isinstance(space, Domain):
        return space
    return copy.deepcopy(space)


def _overlay(config: dict, point: dict) -> None:
    for key, value in point.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict) and not is_grid(config[key]):
            _overlay(config[key], value)
        else:
            config[key] = value


def _resolve_functions(config: dict, paths: list[Path], rng: np.random.Generator) -> None:
    """``sample_from`` functions may read each other's results: retry those that fail
    until a pass makes no progress, then report the last error."""
    pending = list(paths)
    while pending:
        failed, last_error = [], None
        for path in pending:
            func = get_path(config, path)
            try:
                set_path(config, path, func.sample(spec=DotDict(config=DotDict(config)), random_state=rng))
            except Exception as e:  # noqa: BLE001 - reported below if it never resolves
                failed.append(path)
                last_error = e
        if len(failed) == len(pending):
            raise ValueError(
                f"tune.sample_from at param_space[{_path_str(failed[0])}] failed: {last_error!r}"
            ) from last_error
        pending = failed


class BasicVariantGenerator(Searcher):
    """The default searcher: every grid combination ``num_samples`` times, each with fresh
    random draws. ``points_to_evaluate`` (partial configs) come first and count towards
    ``num_samples``; ``random_state`` makes the draws reproducible."""

    def __init__(
        self,
        points_to_evaluate: list[dict] | None = None,
        max_concurrent: int = 0,
        constant_grid_search: bool = False,
        random_state: Any = None,
    ):
        super().__init__()
        if points_to_evaluate is not None and not all(isinstance(p, dict) for p in points_to_evaluate):
            raise ValueError("BasicVariantGenerator: points_to_evaluate must be a list of dicts")
        self._points = list(points_to_evaluate or [])
        self.max_concurrent = max_concurrent
        self._constant_grid = constant_grid_search
        self._rng = np.random.default_rng(random_state)
        self._space: dict = {}
        self._num_samples = 1
        self._grid: list[tuple[Path, list]] = []
        self._next = 0
        self._live: set[str] = set()

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        super().set_search_properties(metric, mode, config)
        self._space = config or {}
        self._num_samples = spec.get("num_samples", 1)
        self._grid = grid_paths(self._space)
        return True

    @property
    def total_samples(self) -> int:
        size = 1
        for _, values in self._grid:
            size *= len(values)
        return size * self._num_samples

    def suggest(self, trial_id: str) -> dict | str | None:
        if self._next >= self.total_samples:
            return Searcher.FINISHED
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        index = self._next
        self._next += 1
        grid_size = self.total_samples // self._num_samples
        sample, cell = divmod(index, grid_size)
        combo = _nth_product([values for _, values in self._grid], cell)
        grid_values = {path: value for (path, _), value in zip(self._grid, combo, strict=True)}
        point = self._points[sample] if sample < len(self._points) else None
        self._live.add(trial_id)
        return resolve(self._space, grid_values, self._rng, base=point)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)


def _nth_product(lists: list[list], n: int) -> tuple:
    """The ``n``-th element of ``itertools.product(*lists)`` without building it."""
    if not lists:
        return ()
    out = []
    for values in reversed(lists):
        n, i = divmod(n, len(values))
        out.append(values[i])
    return tuple(reversed(out))


__all__ = ["BasicVariantGenerator", "DotDict", "count_grid", "resolve", "validate_space", "walk"]
