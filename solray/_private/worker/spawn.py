"""Entry point of a worker started as its own interpreter (``python -m ...spawn``).

Workers of a pip runtime environment run their virtualenv's interpreter, so they cannot
be forked from the node's zygote; the daemon starts them with this module and writes
their configuration (msgpack, the same dict the zygote gets) to their stdin.
"""

from __future__ import annotations

import os
import sys

import msgpack


def main() -> None:
    cfg = msgpack.unpackb(sys.stdin.buffer.read(), raw=False)
    # As a forked worker: fds 0-2 occupied (the worker's log takes 1 and 2 over).
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    from solray._private.worker.main import worker_main

    try:
        worker_main(cfg)
    finally:
        os._exit(1)


if __name__ == "__main__":
    main()
