"""Test helpers that block and signal across processes without sleeping.

Tasks run in other processes, so tests coordinate with them over loopback sockets: a
``Gate`` holds tasks until the test releases them (and tells the test when they arrived);
a ``Mailbox`` lets a task report something back. Both fail a test with a timeout instead of
hanging it. Workers import this module by reference (the driver's ``sys.path`` reaches them).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Gate:
    """Tasks call ``arrive_and_wait(gate.address)`` and block until ``release()``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()[:2]
        self._conns: list[socket.socket] = []
        self._released = False

    def wait_arrivals(self, n: int = 1, timeout: float = 30.0) -> None:
        """Return once ``n`` tasks in total have arrived at the gate."""
        deadline = time.monotonic() + timeout
        while len(self._conns) < n:
            self._listener.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                raise AssertionError(f"only {len(self._conns)} of {n} tasks reached the gate") from None
            self._conns.append(conn)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._listener.close()  # late arrivals are refused and pass straight through
        for c in self._conns:
            try:
                c.sendall(b"go")
                c.close()
            except OSError:
                pass

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def arrive_and_wait(address) -> None:
    """Task side of a ``Gate``: announce arrival, then block until released."""
    try:
        with socket.create_connection(tuple(address)) as s:
            s.recv(2)
    except OSError:
        pass  # the gate was already released


class Mailbox:
    """Tasks ``post(mailbox.address, text)``; the test reads messages with ``get()``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()[:2]

    def get(self, timeout: float = 30.0) -> str:
        self._listener.settimeout(timeout)
        try:
            conn, _ = self._listener.accept()
        except TimeoutError:
            raise AssertionError("no message arrived in the mailbox") from None
        with conn:
            conn.settimeout(timeout)
            chunks = []
            while True:
                b = conn.recv(65536)
                if not b:
                    return b"".join(chunks).decode()
                chunks.append(b)

    def close(self) -> None:
        self._listener.close()


def post(address, text: str) -> None:
    with socket.create_connection(tuple(address)) as s:
        s.sendall(text.encode())
