"""``@serve.ingress(app)``: a deployment class serves an ASGI app (FastAPI, Starlette)."""

from __future__ import annotations

import copyreg
import inspect
from collections.abc import Callable
from typing import Any


def _pickle_state(state: Any) -> tuple:
    return type(state), (dict(state._state),)


try:  # Starlette's app.state cannot be unpickled by default (its __getattr__ recurses).
    from starlette.datastructures import State

    copyreg.pickle(State, _pickle_state)
except ImportError:  # pragma: no cover - Starlette is optional
    pass


class IngressApp:
    """The app a deployment class serves; ``bind`` gives each replica its own copy whose
    routes defined as methods of the class run on the replica's instance."""

    def __init__(self, app: Any, cls: type) -> None:
        self.app = app
        self.cls = cls

    def bind(self, instance: Any) -> Any:
        try:
            from fastapi import FastAPI
            from fastapi.routing import APIRoute
        except ImportError:  # a plain ASGI app
            return self.app
        if instance is None or not isinstance(self.app, FastAPI):
            return self.app
        methods = {}
        for klass in reversed(self.cls.__mro__):
            for name, fn in vars(klass).items():
                if inspect.isfunction(fn):
                    methods[fn] = name
        routes = []
        for route in self.app.router.routes:
            if isinstance(route, APIRoute) and route.endpoint in methods:
                route = APIRoute(
                    route.path, getattr(instance, methods[route.endpoint]),
                    methods=sorted(route.methods or []), response_model=route.response_model,
                    status_code=route.status_code, tags=route.tags, dependencies=route.dependencies,
                    summary=route.summary, description=route.description, name=route.name,
                    response_description=route.response_description, responses=route.responses,
                    deprecated=route.deprecated, operation_id=route.operation_id,
                    include_in_schema=route.include_in_schema, response_class=route.response_class,
                )
            routes.append(route)
        self.app.router.routes = routes
        self.app.openapi_schema = None
        return self.app


def ingress(app: Any) -> Callable[[type], type]:
    """Serve ``app`` (an ASGI app, usually FastAPI) from the decorated deployment class;
    route handlers written as methods of the class get the replica's ``self``."""
    if not callable(app):
        raise TypeError(f"serve.ingress expects an ASGI app such as FastAPI(), got {type(app).__name__}.")

    def decorate(cls: type) -> type:
        if not inspect.isclass(cls):
            raise TypeError("@serve.ingress must decorate a class (put @serve.deployment above it).")
        cls._serve_asgi_app = IngressApp(app, cls)
        return cls

    return decorate
