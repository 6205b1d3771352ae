"""Trial actors and the resources they hold: start (or reuse) an actor per trial with the
trial's resources, poll it, and give everything back at the end. This is the one place the
Tune driver makes solray calls for trials (the controller only decides)."""

from __future__ import annotations

import logging
import time
from typing import Any

import solray
from solray import exceptions
from solray.tune._internal.protocol import CONTINUE, STOP
from solray.tune._internal.trial import Trial
from solray.tune._internal.trial_runner import TrialRunner
from solray.tune.execution.placement_groups import PlacementGroupFactory
from solray.util.placement_group import placement_group, remove_placement_group
from solray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

logger = logging.getLogger("solray.tune")

POLL_TIMEOUT_S = 5.0
_IGNORED_RESOURCES = ("memory", "object_store_memory")


def warn(message: str) -> None:
    logger.warning(message)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _countable(resources: dict) -> dict[str, float]:
    return {k: v for k, v in resources.items()
            if k not in _IGNORED_RESOURCES and not k.startswith("node:") and not k.startswith("accelerator_type:")}


def _actor_options(bundle: dict) -> dict:
    custom = {k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")}
    options: dict[str, Any] = {"num_cpus": bundle.get("CPU", 0), "max_concurrency": 2}
    if bundle.get("GPU"):
        options["num_gpus"] = bundle["GPU"]
    if bundle.get("memory"):
        options["memory"] = bundle["memory"]
    if custom:
        options["resources"] = custom
    return options


class Slot:
    """A running trial: its actor, its placement group (if any) and the poll in flight."""

    def __init__(self, trial: Trial, actor: Any, shape: tuple | None, pg: Any, cost: dict[str, float]):
        self.trial = trial
        self.actor = actor
        self.shape = shape
        self.pg = pg
        self.cost = cost
        self.ref: Any = None
        self.decision = CONTINUE  # the first non-CONTINUE decision sticks
        self._to_send: str | None = None
        self.closing: Any = None
        self.resume_after_pause = False  # resumed while its pause was on the way

    def request(self, decision: str) -> None:
        if self.decision == CONTINUE or decision == STOP:  # a stop overrides a pause
            self.decision = decision
        self._to_send = self.decision
        if self.ref is not None:  # a poll is in flight: reach the trial through a second call
            self.actor.stop.remote(0.0)

    def poll(self) -> None:
        self.ref = self.actor.poll.remote(self._to_send or CONTINUE, POLL_TIMEOUT_S)
        self._to_send = None


class ActorPool:
    """Trial actors by resource shape, with the driver's own count of what they hold, so
    no trial is started that the cluster cannot run now."""

    def __init__(self, setup: Any):
        self.s = setup
        self._remote = solray.remote(TrialRunner)
        # The whole cluster: resources others hold now only delay our actors, and actors
        # of an earlier run may not have given theirs back yet.
        self.capacity = _countable(solray.cluster_resources())
        if setup.reserved_cpus and self.capacity.get("CPU", 0) > setup.reserved_cpus:
            self.capacity["CPU"] -= setup.reserved_cpus
        self.used: dict[str, float] = {}
        self._idle: list[Slot] = []
        self._closing: list[Slot] = []

    # --- capacity -----------------------------------------------------------------------------

    def check_feasible(self, resources: PlacementGroupFactory) -> None:
        total = _countable(solray.cluster_resources())
        if self.s.reserved_cpus and total.get("CPU", 0) > self.s.reserved_cpus:
            total["CPU"] -= self.s.reserved_cpus
        need = resources.required_resources
        short = {k: v for k, v in need.items() if v > total.get(k, 0)}
        if short:
            raise ValueError(
                f"A trial needs {need} but the cluster has {({k: total.get(k, 0) for k in need})} in all, "
                f"so it could never run: lower the resources in tune.with_resources(...) (or the "
                f"Trainer's ScalingConfig), or add nodes"
            )

    def fits(self, resources: PlacementGroupFactory) -> bool:
        need = resources.required_resources
        if self._take_idle(resources, dry_run=True) is not None:
            return True
        idle_held: dict[str, float] = {}
        for slot in self._idle:
            for k, v in slot.cost.items():
                idle_held[k] = idle_held.get(k, 0) + v
        return all(self.used.get(k, 0) - idle_held.get(k, 0) + v <= self.capacity.get(k, 0) + 1e-9
                   for k, v in need.items())

    def wait_for_capacity(self) -> None:
        """Pending trials fit nothing the driver counted: look again (nodes may join)."""
        time.sleep(0.1)
        fresh = _countable(solray.cluster_resources())
        fresh["CPU"] = fresh.get("CPU", 0) - self.s.reserved_cpus
        self.capacity = {k: max(v, self.capacity.get(k, 0)) for k, v in fresh.items()}

    def _add(self, cost: dict, sign: float) -> None:
        for k, v in cost.items():
            self.used[k] = self.used.get(k, 0) + sign * v

    def _take_idle(self, resources: PlacementGroupFactory, dry_run: bool = False) -> Slot | None:
        shape = _shape(resources)
        for slot in self._idle:
            if shape is not None and slot.shape == shape:
                if not dry_run:
                    self._idle.remove(slot)
                return slot
        return None

    def _free_idle_for(self, need: dict) -> None:
        while self._idle and not all(self.used.get(k, 0) + v <= self.capacity.get(k, 0) + 1e-9
                                     for k, v in need.items()):
            self._kill(self._idle.pop(0))

    # --- trials -------------------------------------------------------------------------------

    def start(self, trial: Trial) -> Slot:
        resources: PlacementGroupFactory = trial.resources
        spec = self.s.spec_for(trial)
        reused = self._take_idle(resources) if self.s.reuse_actors else None
        if reused is not None:
            slot = Slot(trial, reused.actor, reused.shape, None, reused.cost)
            spec.reuse_instance = True
        else:
            need = resources.required_resources
            self._free_idle_for(need)
            slot = self._new_actor(trial, resources, spec)
            self._add(slot.cost, +1)
        slot.ref = slot.actor.start.remote(self.s.trainable_ref, spec, POLL_TIMEOUT_S)
        return slot

    def _new_actor(self, trial: Trial, resources: PlacementGroupFactory, spec: Any) -> Slot:
        bundles = resources.bundles
        cost = resources.required_resources
        if len(bundles) == 1:
            actor = self._remote.options(**_actor_options(bundles[0])).remote()
            return Slot(trial, actor, _shape(resources), None, cost)
        head_empty = resources.head_bundle_is_empty
        pg = placement_group(bundles[1:] if head_empty else bundles, strategy=resources.strategy)
        spec.placement_group = pg
        spec.first_worker_bundle = 0 if head_empty else 1
        options = _actor_options(bundles[0])
        if not head_empty:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(pg, 0)
        actor = self._remote.options(**options).remote()
        return Slot(trial, actor, None, pg, cost)

    def wait(self, slots: dict[str, Slot], timeout: float) -> list[tuple[Slot, Any]]:
        self._reap(block=False)
        by_ref = {slot.ref: slot for slot in slots.values() if slot.ref is not None}
        if not by_ref:
            return []
        refs = list(by_ref)
        ready, _ = solray.wait(refs, num_returns=1, timeout=timeout)
        if ready and len(refs) > 1:
            ready, _ = solray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            slot = by_ref[ref]
            slot.ref = None
            try:
                out.append((slot, solray.get(ref)))
            except exceptions.RayError as error:
                out.append((slot, error))
        return out

    def release(self, slot: Slot, reusable: bool) -> None:
        if slot.pg is None and reusable and self.s.reuse_actors:
            slot.decision, slot.ref = CONTINUE, None
            self._idle.append(slot)
            return
        self._kill(slot, graceful=reusable)

    def _kill(self, slot: Slot, graceful: bool = True) -> None:
        """Stop the actor; a healthy one first finishes writing its logs."""
        if graceful:
            slot.closing = slot.actor.shutdown.remote()
            self._closing.append(slot)
        else:
            _kill_actor(slot.actor)
        if slot.pg is not None and not graceful:
            _remove_pg(slot.pg)
        self._add(slot.cost, -1)

    def _reap(self, block: bool) -> None:
        """Kill actors whose shutdown finished (or all of them, waiting, at the end)."""
        if not self._closing:
            return
        refs = [slot.closing for slot in self._closing]
        if block:
            solray.wait(refs, num_returns=len(refs), timeout=30)
        ready, _ = solray.wait(refs, num_returns=len(refs), timeout=0)
        ready_set = set(ready)
        for slot in list(self._closing):
            if block or slot.closing in ready_set:
                self._closing.remove(slot)
                _kill_actor(slot.actor)
                if slot.pg is not None:
                    _remove_pg(slot.pg)

    def shutdown(self) -> None:
        while self._idle:
            self._kill(self._idle.pop())
        self._reap(block=True)


def _kill_actor(actor: Any) -> None:
    try:
        solray.kill(actor)
    except Exception:  # already dead
        pass


def _remove_pg(pg: Any) -> None:
    try:
        remove_placement_group(pg)
    except Exception:  # already removed with its cluster
        pass


def _shape(resources: PlacementGroupFactory) -> tuple | None:
    bundles = resources.bundles
    if len(bundles) != 1:
        return None  # trials with a placement group get a fresh actor each time
    return tuple(sorted(bundles[0].items()))
