"""Exceptions raised by solray, with Ray's names and hierarchy.

A task's exception reaches the caller as a ``RayTaskError`` that is *also* an instance of
the user's exception type (see :meth:`RayTaskError.as_instanceof_cause`), so both
``except RayTaskError`` and ``except ValueError`` work, as they do on Ray.
"""

from __future__ import annotations

from typing import Any


class RayError(Exception):
    """Base class of every error solray raises."""


class RaySystemError(RayError):
    """The runtime itself failed (a bug or a broken installation)."""

    def __init__(self, client_exc: Any = None, traceback_str: str | None = None):
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        super().__init__(client_exc)

    def __str__(self) -> str:
        msg = f"System error: {self.client_exc}"
        if self.traceback_str:
            msg += f"\ntraceback: {self.traceback_str}"
        return msg


class RayTaskError(RayError):
    """A task or actor method raised; ``cause`` is the original exception."""

    def __init__(
        self,
        function_name: str = "",
        traceback_str: str = "",
        cause: BaseException | None = None,
        proctitle: str = "",
        pid: int | None = None,
        ip: str = "",
        actor_repr: str | None = None,
    ):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip
        self.actor_repr = actor_repr
        # Not super(): in the dual class of as_instanceof_cause() that would run the user's
        # exception's __init__, which may need other arguments or overwrite its attributes.
        Exception.__init__(self, traceback_str)

    def __reduce__(self):
        return (
            _rebuild_task_error,
            (
                self.function_name,
                self.traceback_str,
                _portable(self.cause),
                self.proctitle,
                self.pid,
                self.ip,
                self.actor_repr,
            ),
        )

    def __str__(self) -> str:
        head = f"{type(self.cause).__name__ if self.cause is not None else 'RayTaskError'}"
        where = f"{self.function_name}() (pid={self.pid}, ip={self.ip})"
        if self.actor_repr:
            where += f", actor={self.actor_repr}"
        return f"ray::{where}\n{self.traceback_str}".rstrip() if self.traceback_str else head

    def as_instanceof_cause(self) -> RayTaskError:
        """Return a copy whose class derives from both RayTaskError and the cause's type."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or issubclass(cause_cls, RayTaskError) or not _can_subclass(cause_cls):
            return self
        dual = _dual_class(cause_cls)
        err = dual.__new__(dual)
        RayTaskError.__init__(
            err,
            self.function_name,
            self.traceback_str,
            self.cause,
            self.proctitle,
            self.pid,
            self.ip,
            self.actor_repr,
        )
        # Attributes of the user's exception (e.g. ``errno``) stay reachable.
        try:
            err.__dict__.update({k: v for k, v in vars(self.cause).items() if k not in _TASK_ERROR_FIELDS})
        except TypeError:
            pass
        err.args = getattr(self.cause, "args", err.args)
        return err


_DUAL_CLASSES: dict[type, type] = {}
_TASK_ERROR_FIELDS = frozenset(
    {"function_name", "traceback_str", "cause", "proctitle", "pid", "ip", "actor_repr"}
)


def _portable(exc: BaseException | None) -> Any:
    """The cause as it can travel: itself if it unpickles, else rebuilt without ``__init__``.

    Pickle rebuilds an exception by calling ``cls(*exc.args)``, which fails for classes
    whose ``__init__`` takes other arguments than it passes to ``Exception.__init__``;
    such a cause is restored from its ``args`` and ``__dict__`` instead.
    """
    if exc is None:
        return None
    import pickle

    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(exc))
        return exc
    except Exception:
        return _ExceptionState(exc)


class _ExceptionState:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc

    def __reduce__(self):
        e = self.exc
        return (_rebuild_exception, (type(e), e.args, dict(getattr(e, "__dict__", {}))))


def _rebuild_exception(cls: type, args: tuple, state: dict) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def _can_subclass(cls: type) -> bool:
    try:
        type("_probe", (RayTaskError, cls), {})
    except TypeError:
        return False
    return True


def _dual_class(cause_cls: type) -> type:
    dual = _DUAL_CLASSES.get(cause_cls)
    if dual is None:

        def __getattr__(self, name):
            # Fall back to the cause for attributes its class sets lazily.
            cause = self.__dict__.get("cause")
            if cause is None:
                raise AttributeError(name)
            return getattr(cause, name)

        dual = type(
            f"RayTaskError({cause_cls.__name__})",
            (RayTaskError, cause_cls),
            {
                "__init__": lambda self, *a, **k: None,
                "__str__": RayTaskError.__str__,
                "__reduce__": RayTaskError.__reduce__,
                "__getattr__": __getattr__,
                "__module__": cause_cls.__module__,
            },
        )
        _DUAL_CLASSES[cause_cls] = dual
    return dual


def _rebuild_task_error(*args) -> RayTaskError:
    return RayTaskError(*args)


class RayActorError(RayError):
    """The actor died or could not be created; ``error_msg`` says why."""

    def __init__(self, cause: Any = None, error_msg: str | None = None, actor_id: str | None = None):
        self.cause = cause
        self.actor_id = actor_id
        self.error_msg = error_msg or (str(cause) if cause is not None else "The actor died unexpectedly.")
        super().__init__(self.error_msg)

    def __reduce__(self):
        return (type(self), (self.cause, self.error_msg, self.actor_id))

    def __str__(self) -> str:
        return self.error_msg


class ActorDiedError(RayActorError):
    """The actor is dead: it crashed, was killed, or exhausted its restarts."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable (for example while it restarts)."""


class ActorClassInheritanceException(TypeError):
    """A class tried to inherit from an actor class (``@remote`` classes are not bases)."""


class ActorUnschedulableError(RayError):
    """The actor can never be placed on this cluster."""


class TaskUnschedulableError(RayError):
    """The task can never be placed on this cluster."""


class TaskPlacementGroupRemoved(RayError):
    """The task's placement group was removed."""


class ActorPlacementGroupRemoved(RayError):
    """The actor's placement group was removed."""


class GetTimeoutError(RayError, TimeoutError):
    """``get`` or ``wait`` did not finish within its timeout."""


class TaskCancelledError(RayError):
    """The task was cancelled with ``solray.cancel``."""

    def __init__(self, task_id: Any = None, error_message: str | None = None):
        self.task_id = task_id
        self.error_message = error_message
        super().__init__(error_message or f"Task {task_id} was cancelled.")

    def __reduce__(self):
        return (type(self), (self.task_id, self.error_message))

    def __str__(self) -> str:
        return self.error_message or f"Task {self.task_id} was cancelled."


class WorkerCrashedError(RayError):
    """The worker running the task died unexpectedly (and retries were exhausted)."""

    def __str__(self) -> str:
        return (
            str(self.args[0])
            if self.args
            else "The worker died unexpectedly while executing this task."
        )


class ObjectLostError(RayError):
    """An object's value was lost and could not be rebuilt."""

    def __init__(self, object_ref_hex: str = "", owner_address: str = "", call_site: str = ""):
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site
        super().__init__(object_ref_hex)

    def __reduce__(self):
        return (type(self), (self.object_ref_hex, self.owner_address, self.call_site))

    def __str__(self) -> str:
        return f"Failed to retrieve object {self.object_ref_hex}: all copies were lost."


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching an object from another node timed out."""


class OwnerDiedError(ObjectLostError):
    """The worker that owned the object died, so its value can no longer be found."""

    def __str__(self) -> str:
        return (
            f"Failed to retrieve object {self.object_ref_hex}: its owner "
            f"({self.owner_address}) has exited."
        )


class ReferenceCountingAssertionError(ObjectLostError):
    """An object was freed while still referenced (a runtime bug)."""


class ObjectReconstructionFailedError(ObjectLostError):
    """Re-running the object's lineage failed."""


class ObjectStoreFullError(RayError):
    """The shared-memory object store has no room for the object."""


class OutOfDiskError(RayError):
    """Spilling failed because the disk is full."""


class OutOfMemoryError(RayError):
    """The node ran out of memory and killed the task's worker."""


class NodeDiedError(RayError):
    """The node running the task died."""


class RuntimeEnvSetupError(RayError):
    """The runtime environment could not be set up."""

    def __init__(self, error_message: str | None = None):
        self.error_message = error_message
        super().__init__(error_message)

    def __reduce__(self):
        return (type(self), (self.error_message,))

    def __str__(self) -> str:
        return "\n".join(["Failed to set up runtime environment."] + ([self.error_message] if self.error_message else []))


class ActorRuntimeEnvSetupError(ActorDiedError, RuntimeEnvSetupError):
    """An actor that never started because its runtime environment could not be set up:
    both an ``ActorDiedError`` (as Ray's calls to it raise) and a ``RuntimeEnvSetupError``."""

    def __init__(self, cause: Any = None, error_msg: str | None = None, actor_id: str | None = None):
        super().__init__(cause, error_msg, actor_id)
        self.error_message = getattr(cause, "error_message", None) or error_msg


class PendingCallsLimitExceeded(RayError):
    """Too many calls are queued on an actor (``max_pending_calls``)."""


class LocalRayletDiedError(RayError):
    """The node daemon this process was connected to died."""


class CrossLanguageError(RayError):
    """Kept for API compatibility; solray is Python-only."""


class AsyncioActorExit(RayError):
    """Raised inside an async actor to exit it (``solray.actor.exit_actor``)."""


class AuthenticationError(RayError):
    """A request carried no cluster token, or the wrong one (HTTP 401/403)."""


__all__ = [
    "ActorClassInheritanceException",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "TaskUnschedulableError",
    "TaskPlacementGroupRemoved",
    "ActorPlacementGroupRemoved",
    "GetTimeoutError",
    "TaskCancelledError",
    "WorkerCrashedError",
    "ObjectLostError",
    "ObjectFetchTimedOutError",
    "OwnerDiedError",
    "ReferenceCountingAssertionError",
    "ObjectReconstructionFailedError",
    "ObjectStoreFullError",
    "OutOfDiskError",
    "OutOfMemoryError",
    "NodeDiedError",
    "RuntimeEnvSetupError",
    "PendingCallsLimitExceeded",
    "LocalRayletDiedError",
    "CrossLanguageError",
    "AsyncioActorExit",
    "AuthenticationError",
]
