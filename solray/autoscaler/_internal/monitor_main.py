"""The autoscaler process of ``solray up``: ``python -m ... CONFIG CONTROL_ADDRESS SESSION_DIR``."""

from __future__ import annotations

import logging
import os
import signal
import sys

from solray.autoscaler._internal.launcher import read_config
from solray.autoscaler._internal.local_provider import LocalNodeProvider
from solray.autoscaler._internal.monitor import Monitor


def main(argv: list[str]) -> None:
    path, control_address, session_dir = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    _raw, config = read_config(path)
    token = os.environ["SOLRAY_TOKEN"]
    provider = LocalNodeProvider(control_address, token, session_dir)
    monitor = Monitor(config, provider, control_address, token, log=lambda line: print(line, flush=True))
    signal.signal(signal.SIGTERM, lambda *_: monitor.stop_soon())
    print(f"autoscaler: watching {control_address} (node types {sorted(config.node_types)})", flush=True)
    monitor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
