"""``@solray.remote`` on classes: ``ActorClass``, ``ActorHandle`` and ``ActorMethod``."""

from __future__ import annotations

import inspect
from typing import Any

from solray import exceptions
from solray._private import api, ids
from solray._private import options as opts
from solray._private.objects.object_ref import ObjectRef
from solray._private.scheduling import submission
from solray._private.worker import state
from solray._private.worker.returns import create_returns, submit_and_return
from solray._private.worker.task_spec import ACTOR_TASK, TaskSpec


def method(*args: Any, **kwargs: Any) -> Any:
    """Annotate an actor method: ``@solray.method(num_returns=2, concurrency_group="io")``."""
    if args and callable(args[0]) and not kwargs:
        return args[0]
    opts.validate(kwargs, "method")

    def deco(fn):
        fn.__solray_method_options__ = kwargs
        return fn

    return deco


def exit_actor() -> None:
    """Exit the current actor after this call returns; it is not restarted."""
    worker = state.get_core_worker()
    if worker.actor_id is None:
        raise TypeError("exit_actor() can only be called inside an actor.")
    from solray._private.worker.executor import ActorExit

    raise ActorExit()


def _method_meta(cls: type) -> dict:
    methods = {}
    for name, fn in inspect.getmembers(cls, predicate=lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        if name.startswith("__") and name not in ("__call__",):
            continue
        o = dict(getattr(fn, "__solray_method_options__", getattr(fn, "__ray_method_options__", {})))
        methods[name] = {
            "num_returns": o.get("num_returns", 1),
            "concurrency_group": o.get("concurrency_group"),
            "max_task_retries": o.get("max_task_retries"),
            "retry_exceptions": bool(o.get("retry_exceptions", False)),
            "is_generator": inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn),
        }
    return methods


class ActorClass:
    """A class whose instances are actors: ``Cls.remote(*args)`` returns an ``ActorHandle``."""

    def __init__(self, cls: type, options: dict):
        self._cls = cls
        self._options = opts.validate(dict(options), "actor")
        self._descriptor = None
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "Actors cannot be instantiated directly. "
            f"Instead of '{self.__name__}()', use '{self.__name__}.remote()'."
        )

    def __mro_entries__(self, bases: tuple) -> tuple:
        # ``class Sub(SomeActor)``: Python asks the base for real classes; refuse clearly.
        raise exceptions.ActorClassInheritanceException(
            f"Inheriting from actor class {self.__name__!r} is not supported. Inherit from a "
            "plain (non-actor) base class and make the subclass an actor with @solray.remote."
        )

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._remote(args, kwargs, self._options)

    def options(self, **actor_options: Any) -> _ActorOptions:
        return _ActorOptions(self, {**self._options, **opts.validate(dict(actor_options), "actor")})

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from solray.dag import ClassNode

        return ClassNode(self, args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> ActorHandle:
        worker = state.get_core_worker()
        if self._descriptor is None:
            self._descriptor = api.export(self._cls)
        methods = _method_meta(self._cls)
        groups = options.get("concurrency_groups") or {}
        for m, meta in methods.items():
            g = meta["concurrency_group"]
            if g and g not in groups:
                raise ValueError(f"Method {m} uses concurrency group {g!r}, which the actor does not define.")
        actor_id = ids.new_id()
        blob, deps, contained = api.pack_args(worker, args, kwargs, f"actor {self.__name__}")
        resources = opts.task_resources(options, 0.0)
        strategy, resources, placement = submission.resolve(worker, options, resources, f"actor {self.__name__}")
        env_vars = opts.env_vars_of(options)
        packages = opts.packages_of(options)
        namespace = options.get("namespace") or worker.namespace
        meta = {
            "class_name": self.__name__,
            "methods": methods,
            "max_task_retries": options.get("max_task_retries", 0),
        }
        spec = {
            "actor_id": actor_id,
            "task_id": ids.new_id(),
            "class_id": self._descriptor.function_id,
            "class_blob": self._descriptor.pickled,
            "class_name": self.__name__,
            "args_blob": blob,
            "contained": [[r.binary(), r.owner_address()] for r in contained] or None,
            "owner": worker.address,
            "job_id": worker.job_id,
            "name": options.get("name"),
            "namespace": namespace,
            "lifetime": options.get("lifetime"),
            "get_if_exists": bool(options.get("get_if_exists")),
            "max_restarts": options.get("max_restarts", 0),
            "resources": resources,
            "strategy": strategy,
            "placement": placement,
            "env_vars": env_vars,
            "env_key": opts.env_key(env_vars, opts.pip_of(options), packages),
            "pip": opts.pip_of(options),
            "packages": packages,
            "opts": {
                "max_concurrency": options.get("max_concurrency"),
                "concurrency_groups": groups,
                "method_groups": {m: v["concurrency_group"] for m, v in methods.items() if v["concurrency_group"]},
            },
            "meta": meta,
        }
        named = bool(options.get("name"))
        fut = worker.create_actor(spec, deps, wait=named)
        if named:
            reply = fut
            if reply["existing"]:
                return handle_from_info(reply["info"])
        # Constructor arguments stay alive as long as the actor may restart: with the
        # lifetime object (alive while any handle is), else with the creator's handle.
        pins = [*deps, *contained]
        if options.get("lifetime") != "detached" and not named:
            # Named and detached actors outlive their handles (get_actor can find them).
            handle = ActorHandle(actor_id, meta, worker.actor_lifetime_ref(actor_id, spec["task_id"], pins))
        else:
            handle = ActorHandle(actor_id, meta)
            handle._pins = pins
        return handle


class _ActorOptions:
    def __init__(self, actor_class: ActorClass, options: dict):
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._actor_class._remote(args, kwargs, self._options)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from solray.dag import ClassNode

        return ClassNode(self._actor_class, args, kwargs, self._options)


_BUILTIN_METHODS = ("__ray_terminate__", "__ray_ready__", "__ray_call__")


class ActorHandle:
    """A reference to an actor; ``handle.method.remote(*args)`` calls it. Picklable."""

    def __init__(self, actor_id: bytes, meta: dict, lifetime_ref: ObjectRef | None = None):
        self._actor_id = actor_id
        self._meta = meta
        # Held by every copy of the handle; the actor terminates once no copy remains.
        self._lifetime_ref = lifetime_ref
        self._pins = None

    def __getattr__(self, name: str) -> ActorMethod:
        if name == "_meta":  # not set yet (mid-unpickling): no recursion
            raise AttributeError(name)
        methods = self._meta["methods"]
        if name in methods or name in _BUILTIN_METHODS:
            return ActorMethod(self, name, methods.get(name, {"num_returns": 1}))
        if name.startswith("_"):  # copy/pickle/IPython probes
            raise AttributeError(name)
        raise AttributeError(f"'{self._meta['class_name']}' actor has no method '{name}'")

    def __reduce__(self):
        return (_rebuild_handle, (self._actor_id, self._meta, self._lifetime_ref))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._meta['class_name']}, {self._actor_id.hex()})"


def _rebuild_handle(actor_id: bytes, meta: dict, lifetime_ref: ObjectRef | None = None) -> ActorHandle:
    return ActorHandle(actor_id, meta, lifetime_ref)


def handle_from_info(info: dict) -> ActorHandle:
    return ActorHandle(info["actor_id"], info["meta"])


class ActorMethod:
    """``handle.method``: call it with ``.remote()``; ``.options(num_returns=...)`` first if needed."""

    def __init__(self, handle: ActorHandle, name: str, meta: dict, options: dict | None = None):
        self._handle = handle
        self._name = name
        self._meta = meta
        self._options = options or {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "Actor methods cannot be called directly. Instead "
            f"of running 'object.{self._name}()', try 'object.{self._name}.remote()'."
        )

    def options(self, **method_options: Any) -> ActorMethod:
        merged = {**self._options, **opts.validate(dict(method_options), "method")}
        return ActorMethod(self._handle, self._name, self._meta, merged)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from solray.dag import MethodNode

        return MethodNode(self, args, kwargs)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        worker = state.get_core_worker()
        h = self._handle
        name = f"{h._meta['class_name']}.{self._name}"
        task_id = ids.new_id()
        blob, deps, contained = api.pack_args(worker, args, kwargs, f"actor method {name}")
        num_returns = self._options.get("num_returns", self._meta.get("num_returns", 1))
        if num_returns == "streaming" or (num_returns == 1 and self._meta.get("is_generator") and "num_returns" not in self._options):
            num_returns = "streaming" if self._meta.get("is_generator") else num_returns
        return_ids, refs = create_returns(worker, task_id, num_returns)
        retries = self._options.get("max_task_retries", self._meta.get("max_task_retries"))
        if retries is None:
            retries = h._meta.get("max_task_retries", 0)
        spec = TaskSpec(
            task_id=task_id,
            kind=ACTOR_TASK,
            name=name,
            function=None,
            args_blob=blob,
            dep_refs=deps,
            contained=contained,
            num_returns=num_returns,
            return_refs=return_ids,
            options={"concurrency_group": self._options.get("concurrency_group")} if self._options.get("concurrency_group") else None,
            retries_left=retries,
            actor_id=h._actor_id,
            method=self._name,
            parent_task_id=worker.context.task_id,
        )
        return submit_and_return(worker, task_id, num_returns, refs, lambda: worker.actor_submitter.submit(spec))


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "method", "exit_actor", "exceptions"]
