"""``tune.with_resources`` and ``tune.with_parameters``: wrap a trainable so it carries its
resource request, or large objects it reads from the object store."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import solray
from solray.tune.execution.placement_groups import (
    PlacementGroupFactory,
    resource_dict_to_pg_factory,
)
from solray.tune.trainable import Trainable

RESOURCES_ATTR = "_solray_tune_resources"


def with_resources(trainable: Any, resources: dict | PlacementGroupFactory | Callable[[dict], Any]) -> Any:
    """``trainable`` that runs each trial with ``resources``: a dict (``{"cpu": 2, "gpu":
    1}``), a ``PlacementGroupFactory``, or a function of the trial's config returning one."""
    if isinstance(resources, dict):
        resources = resource_dict_to_pg_factory(resources)
    elif not isinstance(resources, PlacementGroupFactory) and not callable(resources):
        raise TypeError(
            f"tune.with_resources: resources must be a dict, a PlacementGroupFactory or a function, "
            f"got {type(resources).__name__}"
        )
    if inspect.isclass(trainable):
        return _subclass(trainable, {RESOURCES_ATTR: resources})
    if not callable(trainable):
        raise TypeError(f"tune.with_resources: {trainable!r} is not a trainable (a function or a Trainable class)")

    @functools.wraps(trainable)
    def run(config: dict) -> Any:
        return trainable(config)

    for attr in ("_solray_bundles", "_solray_strategy"):
        if hasattr(trainable, attr):
            setattr(run, attr, getattr(trainable, attr))
    setattr(run, RESOURCES_ATTR, resources)
    return run


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """``trainable`` whose extra keyword arguments (large datasets, models) are put in the
    object store once and fetched by each trial, instead of being pickled into every one."""
    if not kwargs:
        return trainable
    if not solray.is_initialized():
        solray.init()
    refs = {name: solray.put(value) for name, value in kwargs.items()}
    if inspect.isclass(trainable) and issubclass(trainable, Trainable):
        def setup(self: Trainable, config: dict) -> None:
            trainable.setup(self, config, **_fetch(refs))

        return _subclass(trainable, {"setup": setup, "_solray_parameter_refs": refs})
    if not callable(trainable):
        raise TypeError(f"tune.with_parameters: {trainable!r} is not a function or a Trainable class")

    @functools.wraps(trainable)
    def run(config: dict) -> Any:
        return trainable(config, **_fetch(refs))

    del run.__wrapped__  # its signature is (config), not the wrapped function's
    if hasattr(trainable, RESOURCES_ATTR):
        setattr(run, RESOURCES_ATTR, getattr(trainable, RESOURCES_ATTR))
    run._solray_parameter_refs = refs
    return run


def _subclass(cls: type, attributes: dict) -> type:
    """A subclass of ``cls`` with ``attributes``, named like it (trial names use it)."""
    wrapped = type(cls.__name__, (cls,), attributes)
    wrapped.__qualname__, wrapped.__module__ = cls.__qualname__, cls.__module__
    return wrapped


def _fetch(refs: dict) -> dict:
    names = list(refs)
    values = solray.get([refs[n] for n in names])
    return dict(zip(names, values, strict=True))


def resources_of(trainable: Any, config: dict) -> PlacementGroupFactory:
    """The resources one trial of ``trainable`` asks for (1 CPU unless told otherwise)."""
    request = getattr(trainable, RESOURCES_ATTR, None)
    if request is None and inspect.isclass(trainable) and issubclass(trainable, Trainable):
        request = trainable.default_resource_request(config)
    if request is None and hasattr(trainable, "_solray_bundles"):
        bundles = [dict(b) for b in trainable._solray_bundles]
        return PlacementGroupFactory(bundles, strategy=getattr(trainable, "_solray_strategy", "PACK"))
    if callable(request) and not isinstance(request, PlacementGroupFactory):
        request = request(config)
    if request is None:
        return PlacementGroupFactory([{"CPU": 1}])
    if isinstance(request, dict):
        return resource_dict_to_pg_factory(request)
    if isinstance(request, PlacementGroupFactory):
        return request
    raise TypeError(f"resources for a trial must be a dict or a PlacementGroupFactory, got {request!r}")
