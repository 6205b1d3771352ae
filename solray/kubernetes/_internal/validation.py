"""Checks of RayCluster specs that a schema cannot express (or that a server without schema
validation let through). An invalid spec becomes status + Event, never an operator crash."""

from __future__ import annotations

from typing import Any


class InvalidSpec(ValueError):
    """The resource's spec cannot be reconciled; the message names the field and the problem."""


def _int_field(group: dict, key: str, where: str) -> int | None:
    value = group.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{where}.{key} must be an integer, got {value!r}")
    if value < 0:
        raise InvalidSpec(f"{where}.{key} must not be negative, got {value}")
    return value


def _check_template(template: Any, where: str) -> None:
    containers = ((template or {}).get("spec") or {}).get("containers") if isinstance(template, dict) else None
    if not containers:
        raise InvalidSpec(f"{where}.template.spec.containers must list at least one container (the Ray container)")
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            raise InvalidSpec(f"{where}.template.spec.containers[{i}] needs a name and an image")


def validate_cluster_spec(spec: Any) -> None:
    """Raise ``InvalidSpec`` naming the first problem of a RayCluster spec."""
    if not isinstance(spec, dict):
        raise InvalidSpec("spec must be an object")
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        raise InvalidSpec("spec.headGroupSpec is required")
    _check_template(head.get("template"), "spec.headGroupSpec")
    names: set[str] = set()
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        where = f"spec.workerGroupSpecs[{i}]"
        if not isinstance(group, dict):
            raise InvalidSpec(f"{where} must be an object")
        name = group.get("groupName")
        if not name:
            raise InvalidSpec(f"{where}.groupName is required")
        if name in names:
            raise InvalidSpec(f"{where}.groupName {name!r} is used by two worker groups")
        names.add(name)
        _int_field(group, "replicas", where)
        low = _int_field(group, "minReplicas", where)
        high = _int_field(group, "maxReplicas", where)
        if low is not None and high is not None and low > high:
            raise InvalidSpec(f"{where}: minReplicas ({low}) is greater than maxReplicas ({high})")
        _check_template(group.get("template"), where)
        if group.get("rayStartParams") is not None and not isinstance(group["rayStartParams"], dict):
            raise InvalidSpec(f"{where}.rayStartParams must be a map of strings")
