"""solray.serve: scalable model serving over HTTP and Python handles (Ray Serve's API).

``@serve.deployment`` classes and functions run as replica actors; ``serve.run(app)``
deploys an application and returns a ``DeploymentHandle``; an HTTP proxy on port 8000
routes requests by ``route_prefix``. See docs/serve.md.
"""

from solray.serve.api import (
    delete,
    get_app_handle,
    get_deployment_handle,
    run,
    shutdown,
    start,
    status,
)
from solray.serve.batching import batch
from solray.serve.config import AutoscalingConfig, DeploymentConfig, HTTPOptions
from solray.serve.context import ReplicaContext, get_multiplexed_model_id, get_replica_context
from solray.serve.deployment import Application, Deployment, deployment
from solray.serve.exceptions import BackPressureError, RayServeException
from solray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator
from solray.serve.ingress import ingress
from solray.serve.multiplex import multiplexed
from solray.serve.schema import ApplicationStatus, DeploymentStatus, ServeStatus

__all__ = [
    "Application",
    "ApplicationStatus",
    "AutoscalingConfig",
    "BackPressureError",
    "Deployment",
    "DeploymentConfig",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "DeploymentStatus",
    "HTTPOptions",
    "RayServeException",
    "ReplicaContext",
    "ServeStatus",
    "batch",
    "delete",
    "deployment",
    "get_app_handle",
    "get_deployment_handle",
    "get_multiplexed_model_id",
    "get_replica_context",
    "ingress",
    "multiplexed",
    "run",
    "shutdown",
    "start",
    "status",
]
