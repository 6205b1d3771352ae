"""``@solray.remote`` on functions: ``RemoteFunction`` and its ``.remote()`` / ``.options()``."""

from __future__ import annotations

import functools
from typing import Any

from solray._private import api, ids
from solray._private import options as opts
from solray._private.scheduling import submission
from solray._private.worker import state
from solray._private.worker.returns import create_returns, submit_and_return
from solray._private.worker.task_spec import NORMAL_TASK, TaskSpec

DEFAULT_MAX_RETRIES = 3


class RemoteFunction:
    """A function that runs as a task: call ``f.remote(*args)`` to get ``ObjectRef``s."""

    def __init__(self, function: Any, options: dict):
        self._function = function
        self._options = opts.validate(dict(options), "task")
        self._descriptor = None
        self._name = getattr(function, "__qualname__", getattr(function, "__name__", "function"))
        functools.update_wrapper(self, function, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "Remote functions cannot be called directly. Instead "
            f"of running '{self._name}()', try '{self._name}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote(args, kwargs, self._options)

    def options(self, **task_options: Any) -> _BoundOptions:
        merged = {**self._options, **opts.validate(dict(task_options), "task")}
        return _BoundOptions(self, merged)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from solray.dag import FunctionNode

        return FunctionNode(self, args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> Any:
        worker = state.get_core_worker()
        if self._descriptor is None:
            self._descriptor = api.export(self._function)
        task_id = ids.new_id()
        name = options.get("name") or self._name
        blob, deps, contained = api.pack_args(worker, args, kwargs, f"task {name}")
        num_returns = options.get("num_returns", 1)
        return_ids, refs = create_returns(worker, task_id, num_returns)
        resources = opts.task_resources(options, 1.0)
        env_vars = opts.env_vars_of(options)
        strategy, resources, placement = submission.resolve(worker, options, resources, f"task {name}")
        pip = opts.pip_of(options)
        packages = opts.packages_of(options)
        env_key = opts.env_key(env_vars, pip, packages)
        sched_key = (tuple(sorted(resources.items())), env_key, repr(strategy))
        max_retries = options.get("max_retries", DEFAULT_MAX_RETRIES)
        retry_exc = options.get("retry_exceptions", False)
        spec = TaskSpec(
            task_id=task_id,
            kind=NORMAL_TASK,
            name=name,
            function=self._descriptor,
            args_blob=blob,
            dep_refs=deps,
            contained=contained,
            num_returns=num_returns,
            return_refs=return_ids,
            resources=resources,
            options=options,
            retries_left=max_retries,
            retry_exceptions=retry_exc,
            sched_key=sched_key,
            parent_task_id=worker.context.task_id,
            env_vars=env_vars,
            placement=placement,
        )
        request = {
            "resources": resources,
            "job_id": worker.job_id,
            "env_vars": env_vars,
            "env_key": env_key,
            "strategy": strategy,
        }
        if pip:
            request["pip"] = pip
        if packages:
            request["packages"] = packages
        if options.get("max_calls"):
            spec.options = dict(options)
        return submit_and_return(worker, task_id, num_returns, refs, lambda: worker.submitter.submit(spec, request))


class _BoundOptions:
    """The result of ``f.options(...)``: submit with these options."""

    def __init__(self, fn: RemoteFunction, options: dict):
        self._fn = fn
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn._remote(args, kwargs, self._options)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from solray.dag import FunctionNode

        return FunctionNode(self._fn, args, kwargs, self._options)
