"""Top-level functions about actors, tasks and the cluster: kill, cancel, get_actor, nodes..."""

from __future__ import annotations

from typing import Any

from solray._private.objects.object_ref import ObjectRef
from solray._private.worker import state


def kill(actor: Any, *, no_restart: bool = True) -> None:
    from solray.actor import ActorHandle

    if not isinstance(actor, ActorHandle):
        raise ValueError(f"solray.kill() only supported for actors. For tasks, try solray.cancel(). Got: {actor!r}.")
    state.get_core_worker().kill_actor(actor._actor_id, bool(no_restart))


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    if not isinstance(ref, ObjectRef):
        from solray._private.objects.object_ref import ObjectRefGenerator

        if isinstance(ref, ObjectRefGenerator):
            ref = ref.completed()
        else:
            raise TypeError(f"solray.cancel() only supported for object refs. Got: {type(ref).__name__}.")
    worker = state.get_core_worker()
    if force:
        from solray._private import ids

        tid = ids.task_id_of(ref.binary())
        if tid not in worker.submitter.running:
            for st in worker.actor_submitter.actors.values():
                if tid in st.inflight or any(s.task_id == tid for s in st.queue):
                    raise ValueError("force=True is not supported for actor tasks.")
    worker.cancel(ref, force, recursive)


def get_actor(name: str, namespace: str | None = None) -> Any:
    from solray.actor import handle_from_info

    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    worker = state.get_core_worker()
    ns = namespace if namespace is not None else worker.namespace
    info = worker.control_call("get_named_actor", [name, ns])
    if info is None:
        raise ValueError(
            f"Failed to look up actor with name '{name}'. This could because 1. You are trying "
            "to look up a named actor you didn't create. 2. The named actor died. 3. You did "
            f"not use a namespace matching the namespace of the actor (looked in {ns!r})."
        )
    return handle_from_info(info)


def get_actor_by_id(actor_id: bytes) -> Any:
    from solray.actor import handle_from_info

    info = state.get_core_worker().control_call("get_actor_info", actor_id)
    if info is None:
        raise ValueError(f"no actor with id {actor_id.hex()}")
    return handle_from_info(info)


def nodes() -> list[dict]:
    out = []
    for n in state.get_core_worker().control_call("get_nodes"):
        host, port = n["address"].rsplit(":", 1)
        out.append(
            {
                "NodeID": n["node_id"],
                "Alive": bool(n.get("alive")),
                "alive": bool(n.get("alive")),
                "NodeManagerAddress": n["node_ip"],
                "NodeManagerHostname": n["node_ip"],
                "NodeManagerPort": int(port),
                "ObjectManagerPort": int(port),
                "ObjectStoreSocketName": n.get("shm_dir", ""),
                "Resources": dict(n["resources_total"]),
                "Labels": n.get("labels") or {},
                "IsHead": bool(n.get("is_head")),
            }
        )
    return out


def _sum(field: str) -> dict:
    total: dict[str, float] = {}
    for n in state.get_core_worker().control_call("get_nodes"):
        if not n.get("alive"):
            continue
        for k, v in n[field].items():
            total[k] = total.get(k, 0.0) + v
    return {k: v for k, v in total.items() if v > 0 or field == "resources_total"}


def cluster_resources() -> dict:
    return _sum("resources_total")


def available_resources() -> dict:
    return _sum("resources_available")


def get_gpu_ids() -> list:
    return state.get_core_worker().gpu_ids or []
