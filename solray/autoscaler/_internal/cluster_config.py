"""``cluster.yaml`` (Ray's cluster launcher format) -> an ``AutoscalerConfig``.

Keys read: ``cluster_name``, ``max_workers``, ``upscaling_speed``, ``idle_timeout_minutes``
(or ``idle_timeout_s``), ``provider.type`` (``local``), ``available_node_types`` with
``resources``, ``min_workers``, ``max_workers``, and ``head_node_type``.
"""

from __future__ import annotations

from typing import Any

from solray.autoscaler._internal.scheduler import AutoscalerConfig, NodeType

PROVIDERS = ("local",)


class ClusterConfigError(ValueError):
    """The cluster.yaml is invalid; the message names the key."""


def _number(value: Any, key: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ClusterConfigError(f"{key} must be a non-negative number, got {value!r}")
    return value


def load(raw: Any) -> tuple[dict, AutoscalerConfig]:
    """Validate ``raw`` (the parsed YAML); return it and the autoscaler's config for the workers."""
    if not isinstance(raw, dict):
        raise ClusterConfigError("cluster.yaml must be a mapping")
    provider = raw.get("provider") or {}
    if provider.get("type") not in PROVIDERS:
        raise ClusterConfigError(f"provider.type must be one of {list(PROVIDERS)}, got {provider.get('type')!r}")
    types = raw.get("available_node_types")
    if not isinstance(types, dict) or not types:
        raise ClusterConfigError("available_node_types must map node type names to their resources")
    head = raw.get("head_node_type") or next(iter(types))
    if head not in types:
        raise ClusterConfigError(f"head_node_type {head!r} is not in available_node_types {sorted(types)}")
    node_types = {}
    for name, spec in types.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("resources"), dict):
            raise ClusterConfigError(f"available_node_types.{name}.resources must be a mapping, e.g. {{CPU: 2}}")
        resources = {k: _number(v, f"available_node_types.{name}.resources.{k}", 0) for k, v in spec["resources"].items()}
        if name == head:
            continue
        node_types[name] = NodeType(
            name, resources,
            int(_number(spec.get("min_workers"), f"available_node_types.{name}.min_workers", 0)),
            int(_number(spec.get("max_workers"), f"available_node_types.{name}.max_workers", raw.get("max_workers", 2**31 - 1))),
        )
    idle = raw.get("idle_timeout_s")
    idle_s = _number(idle, "idle_timeout_s", 0) if idle is not None else 60 * _number(raw.get("idle_timeout_minutes"), "idle_timeout_minutes", 5)
    try:
        config = AutoscalerConfig(
            node_types,
            max_workers=int(_number(raw.get("max_workers"), "max_workers", 2**31 - 1)),
            idle_timeout_s=idle_s,
            upscaling_speed=_number(raw.get("upscaling_speed"), "upscaling_speed", 1.0),
        )
    except ValueError as e:
        raise ClusterConfigError(str(e)) from e
    return {**raw, "head_node_type": head}, config
