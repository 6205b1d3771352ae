"""Lazy call graphs (Ray's DAG API): ``f.bind(x)`` builds a node, ``.execute()`` runs it.

Arguments that are themselves nodes run first and are passed on as ``ObjectRef``s, so a
graph of tasks and actor calls runs with the same parallelism as hand-written
``.remote()`` calls. Serve builds applications from ``ClassNode``s.
"""

from __future__ import annotations

from typing import Any


class DAGNode:
    def __init__(self, args: tuple, kwargs: dict, options: dict | None = None):
        self._bound_args = args
        self._bound_kwargs = kwargs
        self._bound_options = dict(options or {})

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph; ``InputNode`` placeholders take ``args``/``kwargs``."""
        return self._execute({}, args, kwargs)

    def _resolve(self, value: Any, cache: dict, args: tuple, kwargs: dict) -> Any:
        if isinstance(value, DAGNode):
            return value._execute(cache, args, kwargs)
        if isinstance(value, list):
            return [self._resolve(v, cache, args, kwargs) for v in value]
        if isinstance(value, tuple):
            return tuple(self._resolve(v, cache, args, kwargs) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v, cache, args, kwargs) for k, v in value.items()}
        return value

    def _resolved_args(self, cache: dict, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        a = tuple(self._resolve(v, cache, args, kwargs) for v in self._bound_args)
        k = {key: self._resolve(v, cache, args, kwargs) for key, v in self._bound_kwargs.items()}
        return a, k

    def _execute(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        key = id(self)
        if key not in cache:
            cache[key] = self._run(cache, args, kwargs)
        return cache[key]

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        raise NotImplementedError


class InputNode(DAGNode):
    """The graph's input: ``with InputNode() as inp: dag = f.bind(inp)``."""

    def __init__(self):
        super().__init__((), {})

    def __enter__(self) -> InputNode:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __getitem__(self, key: Any) -> InputAttributeNode:
        return InputAttributeNode(self, key)

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        if len(args) == 1 and not kwargs:
            return args[0]
        return args if args else kwargs


class InputAttributeNode(DAGNode):
    def __init__(self, parent: InputNode, key: Any):
        super().__init__((), {})
        self._parent = parent
        self._key = key

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        if isinstance(self._key, int):
            return args[self._key]
        return kwargs[self._key]


class FunctionNode(DAGNode):
    def __init__(self, remote_function: Any, args: tuple, kwargs: dict, options: dict):
        super().__init__(args, kwargs, options)
        self._remote_function = remote_function

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        a, k = self._resolved_args(cache, args, kwargs)
        return self._remote_function._remote(a, k, self._bound_options)


class ClassNode(DAGNode):
    def __init__(self, actor_class: Any, args: tuple, kwargs: dict, options: dict):
        super().__init__(args, kwargs, options)
        self._actor_class = actor_class

    def __getattr__(self, name: str) -> _UnboundMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _UnboundMethod(self, name)

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        a, k = self._resolved_args(cache, args, kwargs)
        return self._actor_class._remote(a, k, self._bound_options)


class _UnboundMethod:
    def __init__(self, class_node: ClassNode, name: str):
        self._class_node = class_node
        self._name = name

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode:
        return ClassMethodNode(self._class_node, self._name, args, kwargs)


class ClassMethodNode(DAGNode):
    def __init__(self, class_node: ClassNode, name: str, args: tuple, kwargs: dict):
        super().__init__(args, kwargs)
        self._class_node = class_node
        self._name = name

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        handle = self._class_node._execute(cache, args, kwargs)
        a, k = self._resolved_args(cache, args, kwargs)
        return getattr(handle, self._name).remote(*a, **k)


class MethodNode(DAGNode):
    """``handle.method.bind(...)`` on an existing actor handle."""

    def __init__(self, actor_method: Any, args: tuple, kwargs: dict):
        super().__init__(args, kwargs)
        self._actor_method = actor_method

    def _run(self, cache: dict, args: tuple, kwargs: dict) -> Any:
        a, k = self._resolved_args(cache, args, kwargs)
        return self._actor_method.remote(*a, **k)


__all__ = ["ClassMethodNode", "ClassNode", "DAGNode", "FunctionNode", "InputNode", "MethodNode"]
