"""Entry point of a node process: the control service (head only) plus the node daemon.

Run by ``solray.init()`` for the embedded local cluster and by ``solray start``. On
start it prints one JSON line with the addresses to stdout; with ``--embedded`` it exits
when its parent (the driver that started it) closes its stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from solray._private.control.service import ControlService
from solray._private.node.daemon import NodeDaemon


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--head", action="store_true")
    p.add_argument("--control-only", action="store_true", help="run only the control service")
    p.add_argument("--head-node", action="store_true", help="a head node whose control service runs apart")
    p.add_argument("--embedded", action="store_true")
    p.add_argument("--node-ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-address", default="")
    p.add_argument("--session-dir", required=True)
    p.add_argument("--resources", default="{}")
    p.add_argument("--labels", default="{}", help="JSON dict of this node's labels")
    p.add_argument("--object-store-memory", type=int, required=True)
    p.add_argument("--storage", default=None, help="SQLite file for the control service's tables")
    p.add_argument("--dashboard-port", type=int, default=None)
    p.add_argument("--dashboard-host", default="127.0.0.1")
    p.add_argument("--spill-dir", default=None)
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    token = os.environ["SOLRAY_TOKEN"]
    control = None
    control_address = args.control_address
    if args.head:
        control = ControlService(token, args.node_ip, storage=args.storage)
        await control.start(args.port)
        control_address = control.address
    if args.control_only:
        await _serve_control_only(args, control)
        return
    daemon = NodeDaemon(
        token=token,
        node_ip=args.node_ip,
        control_address=control_address,
        session_dir=args.session_dir,
        resources=json.loads(args.resources),
        labels=json.loads(args.labels),
        object_store_memory=args.object_store_memory,
        is_head=args.head or args.head_node,
        spill_dir=args.spill_dir,
    )
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    daemon.on_fatal = lambda: stop.done() or stop.set_result(None)
    await daemon.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    if args.embedded:
        loop.add_reader(sys.stdin.fileno(), lambda: _on_stdin(stop))
    dashboard, dashboard_info = None, {}
    if args.head and args.dashboard_port is not None:
        from solray.dashboard.launcher import DashboardSupervisor

        dashboard = DashboardSupervisor(
            host=args.dashboard_host, port=args.dashboard_port, control_address=control_address,
            session_dir=args.session_dir, node_id=daemon.node_id, token=token,
        )
        dashboard_info = await dashboard.start(wait=not args.embedded)
    print(
        json.dumps(
            {
                "control_address": control_address,
                "daemon_address": daemon.address,
                "node_id": daemon.node_id,
                "shm_dir": daemon.shm_dir,
                "pid": os.getpid(),
                **dashboard_info,
            }
        ),
        flush=True,
    )
    try:
        await stop
    finally:
        if dashboard is not None:
            await dashboard.stop()
        daemon.shutdown()


async def _serve_control_only(args: argparse.Namespace, control: ControlService) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(json.dumps({"control_address": control.address, "pid": os.getpid()}), flush=True)
    await stop
    control.store.close()


def _on_stdin(stop: asyncio.Future) -> None:
    if not os.read(sys.stdin.fileno(), 4096) and not stop.done():
        stop.set_result(None)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.makedirs(os.path.join(args.session_dir, "logs"), exist_ok=True)
    logging.basicConfig(
        filename=os.path.join(
            args.session_dir, "logs", "control.log" if args.control_only else "head.log" if args.head else "node.log"
        ),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
