"""Helpers the library-backed searchers share: flatten a nested ``param_space`` into
``"a/b"`` keys of Domains and constants, and fold flat configs back into nested ones."""

from __future__ import annotations

from typing import Any

from solray.tune.search.sample import Domain, Function
from solray.tune.search.variant_generator import is_grid

SEP = "/"


def flatten_space(space: dict, searcher: str) -> tuple[dict[str, Domain], dict[str, Any]]:
    """``(domains, constants)`` keyed by ``"a/b"`` paths; grids and ``sample_from`` are
    rejected with the searcher's name, as these searchers cannot model them."""
    domains: dict[str, Domain] = {}
    constants: dict[str, Any] = {}

    def visit(value: Any, path: str) -> None:
        if is_grid(value):
            raise ValueError(f"{searcher} does not support grid_search (at param_space[{path}]); "
                             "use tune.choice, or the default searcher")
        if isinstance(value, Function):
            raise ValueError(f"{searcher} does not support tune.sample_from (at param_space[{path}])")
        if isinstance(value, Domain):
            domains[path] = value
        elif isinstance(value, dict) and value:
            for key, inner in value.items():
                visit(inner, f"{path}{SEP}{key}" if path else str(key))
        else:
            constants[path] = value

    visit(space or {}, "")
    return domains, constants


def unflatten(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for path, value in flat.items():
        keys = path.split(SEP)
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def flatten_point(point: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in point.items():
        path = f"{prefix}{SEP}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten_point(value, path))
        else:
            flat[path] = value
    return flat


def objective(result: dict | None, metric: str, mode: str) -> float | None:
    """The value to minimise (``mode="max"`` negates), or None when it is missing."""
    if not result or metric not in result:
        return None
    value = float(result[metric])
    return -value if mode == "max" else value
