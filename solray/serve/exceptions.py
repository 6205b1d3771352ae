"""Serve's exceptions (Ray's names)."""

from __future__ import annotations


class RayServeException(Exception):
    """A Serve API was used wrongly, or Serve is not running."""


class BackPressureError(RayServeException):
    """A deployment's queue is full (``max_queued_requests``): the request was refused."""

    def __init__(self, num_queued_requests: int = 0, max_queued_requests: int = 0, deployment: str = ""):
        self.num_queued_requests = num_queued_requests
        self.max_queued_requests = max_queued_requests
        self.deployment = deployment
        super().__init__(
            f"Request dropped due to backpressure: deployment {deployment!r} has "
            f"{num_queued_requests} queued requests (max_queued_requests={max_queued_requests})."
        )

    def __reduce__(self):
        return (BackPressureError, (self.num_queued_requests, self.max_queued_requests, self.deployment))


class DeploymentUnavailableError(RayServeException):
    """The deployment has no replica that could take the request."""
