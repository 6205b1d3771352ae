"""The one session of a process that reports: a Train worker's, or a Tune trial's.

``solray.train.report`` and ``solray.tune.report`` both call ``current().report(...)``,
so a function trainable may use either (as in Ray). Train installs a session in each
training worker; Tune installs one in each trial actor. A Trainer running inside a Tune
trial (``Tuner(trainer)``) finds the trial's session with ``current()`` from its
coordinator and forwards each result to it, and places its workers in the trial's
placement group (``placement_group``/``first_worker_bundle``).
"""

from __future__ import annotations

from typing import Any

_current: list = []  # a stack: a session may be installed while another is active


class Session:
    """What a reporting context provides; subclasses in Train and Tune implement it."""

    #: The placement group reserved for this run (a Tune trial's), or None.
    placement_group: Any = None
    #: Index of the first bundle of ``placement_group`` meant for training workers.
    first_worker_bundle: int = 1

    def report(self, metrics: dict, checkpoint: Any = None) -> None:
        raise NotImplementedError

    def get_checkpoint(self) -> Any:
        return None

    def get_context(self) -> Any:
        raise NotImplementedError


def install(session: Session) -> None:
    _current.append(session)


def uninstall(session: Session) -> None:
    if session in _current:
        _current.remove(session)


def current() -> Session | None:
    return _current[-1] if _current else None


def require(caller: str) -> Session:
    """The active session, or an error saying where ``caller`` may be used."""
    session = current()
    if session is None:
        raise RuntimeError(
            f"{caller} was called outside a training loop or a Tune trial: call it inside the "
            "function passed to a Trainer (train_loop_per_worker) or to a Tuner"
        )
    return session
