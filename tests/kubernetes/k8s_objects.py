"""An in-memory stand-in for the objects of one namespace, for driving reconcile passes.

``apply`` carries a ``Plan`` out the way the API server would (names from generateName,
creation order, status written); tests then mark Pods running, failed or gone.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import yaml

from solray.kubernetes import Plan

HERE = Path(__file__).parent


def manifest(name: str) -> dict:
    return yaml.safe_load((HERE / "manifests" / name).read_text())


class Objects:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self._seq = itertools.count(1)

    def apply(self, plan: Plan) -> list[dict]:
        made = []
        for obj in plan.create:
            obj = copy.deepcopy(obj)
            n = next(self._seq)
            md = obj["metadata"]
            if "name" not in md:
                md["name"] = f"{md.pop('generateName')}{n:05x}"
            md["creationTimestamp"] = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
            md["uid"] = f"uid-{n}"
            if obj["kind"] == "Pod":
                obj["status"] = {"phase": "Pending"}
            if obj["kind"] == "Service":
                obj["spec"]["clusterIP"] = f"10.96.0.{n}"
            self.items[(obj["kind"], md["name"])] = obj
            made.append(obj)
        for key in plan.delete:
            self.items.pop(key, None)
        for obj in plan.update:
            self.items[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        return made

    def of(self, kind: str) -> list[dict]:
        return [copy.deepcopy(o) for (k, _), o in sorted(self.items.items()) if k == kind]

    def rbac(self) -> list[dict]:
        return self.of("ServiceAccount") + self.of("Role") + self.of("RoleBinding")

    def pods(self, **labels: str) -> list[dict]:
        return [p for p in self.of("Pod") if all(p["metadata"]["labels"].get(k) == v for k, v in labels.items())]

    def run_all(self) -> None:
        for (kind, name), obj in self.items.items():
            if kind == "Pod" and obj["status"]["phase"] == "Pending":
                obj["status"] = {"phase": "Running", "podIP": f"10.0.0.{len(name)}",
                                 "containerStatuses": [{"name": "ray", "ready": True}]}

    def set_phase(self, name: str, phase: str) -> None:
        self.items[("Pod", name)]["status"]["phase"] = phase


def reconcile_until_stable(cluster: dict, objs: Objects, passes: int = 5):
    """Reconcile, apply, mark Pods running, repeat until a pass plans nothing; return the last plan."""
    from solray.kubernetes import reconcile_cluster

    plan = None
    for _ in range(passes):
        plan = reconcile_cluster(cluster, objs.of("Pod"), objs.of("Service"), objs.of("Secret"),
                                 new_token="t0ken", now="2026-01-01T01:00:00Z", rbac=objs.rbac())
        cluster["status"] = plan.status
        if plan.spec_patch:
            cluster["spec"].update(plan.spec_patch)
        if not (plan.create or plan.delete or plan.update):
            return plan
        objs.apply(plan)
        objs.run_all()
    raise AssertionError(f"no stable state after {passes} passes: {plan}")
