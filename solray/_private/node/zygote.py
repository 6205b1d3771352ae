"""The fork server: a single-threaded process with the runtime imported, forking workers.

Forking from it makes a new worker ready in milliseconds instead of paying an interpreter
start and imports each time. It reads fork requests as length-prefixed msgpack frames on
stdin and answers each with the child's pid on stdout.
"""

from __future__ import annotations

import os
import signal
import struct
import sys

# Imported for their side effect: children inherit them already loaded.
import cloudpickle  # noqa: F401
import msgpack

import solray  # noqa: F401
from solray._private.worker import core_worker, executor  # noqa: F401
from solray._private.worker.main import worker_main

_LEN = struct.Struct("!I")


def _read_exact(fd: int, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    base_cfg: dict = {}
    while True:
        try:
            (n,) = _LEN.unpack(_read_exact(stdin, 4))
            req = msgpack.unpackb(_read_exact(stdin, n), raw=False)
        except EOFError:
            return
        if "base" in req:
            base_cfg = req["base"]
            continue
        cfg = {**base_cfg, **req}
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            os.close(stdin)
            os.close(stdout)
            # Keep fds 0-2 occupied so no new socket or epoll fd lands on them.
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            try:
                worker_main(cfg)
            finally:
                os._exit(1)
        reply = msgpack.packb({"worker_id": req["worker_id"], "pid": pid})
        os.write(stdout, _LEN.pack(len(reply)) + reply)


if __name__ == "__main__":
    main()
