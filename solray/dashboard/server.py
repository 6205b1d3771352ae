"""The dashboard server process on port 8265: Ray's Jobs REST API, the state API
(``/api/v0/*``), Prometheus ``/metrics`` and the web UI (``/``).

Started by the head node process (``head_main``) when it is given ``--dashboard-port``;
run as ``python -m solray.dashboard.server``. It binds 127.0.0.1 unless ``--host`` says
otherwise, authenticates every request with the cluster token (``SOLRAY_TOKEN`` in its
environment), prints one JSON line ``{"dashboard_url": ...}`` once it serves, and exits
(stopping the jobs it runs) when its parent closes its stdin or sends SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys

logger = logging.getLogger("solray.dashboard")

# Where the dashboard writes its URL in the control service's KV, for clients that know
# only the cluster's control address.
KV_NAMESPACE_DASHBOARD = "dashboard"
KV_KEY_URL = b"url"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m solray.dashboard.server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8265)
    p.add_argument("--control-address", required=True)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--node-id", default=None)
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (the parent died)")
    return p.parse_args(argv)


def build_app(manager, session_name: str, token: str):
    from starlette.applications import Starlette

    from solray.dashboard.auth import TokenAuthMiddleware
    from solray.dashboard.modules.job.routes import JobRoutes
    from solray.dashboard.modules.metrics.routes import MetricsRoutes
    from solray.dashboard.modules.serve.routes import ServeRoutes
    from solray.dashboard.modules.state.log_routes import LogRoutes
    from solray.dashboard.modules.state.routes import StateRoutes
    from solray.dashboard.modules.ui.routes import OPEN_PATHS, UiRoutes

    routes = (
        JobRoutes(manager, session_name).routes()
        + StateRoutes(manager.control).routes()
        + LogRoutes(manager.control, token).routes()
        + MetricsRoutes(manager.control).routes()
        + ServeRoutes(manager.control, token).routes()
        + UiRoutes(manager.control, session_name).routes()
    )
    app = Starlette(routes=routes)
    # The web UI's page holds no data (it asks for the token, then calls the APIs).
    return TokenAuthMiddleware(app, token, open_paths=OPEN_PATHS, query_token_paths=frozenset({"/metrics"}))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a keep-alive client (requests, Ray's SDK)
    # waits ~40 ms per response (Nagle + delayed ACK between the headers and the body).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def run(args: argparse.Namespace) -> None:
    import uvicorn

    from solray._private.control.client import ControlClient
    from solray.dashboard.modules.job.manager import JobManager

    token = os.environ["SOLRAY_TOKEN"]
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{port}"
    control = ControlClient(args.control_address, token)
    manager = JobManager(control, token, args.session_dir, node_id=args.node_id)
    manager.start()
    await manager.recover()
    await control.kv_put(KV_NAMESPACE_DASHBOARD, KV_KEY_URL, url.encode(), True)
    app = build_app(manager, os.path.basename(args.session_dir.rstrip("/")), token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    loop = asyncio.get_running_loop()
    if args.watch_stdin:
        def on_stdin() -> None:
            if not os.read(sys.stdin.fileno(), 4096):
                loop.remove_reader(sys.stdin.fileno())
                server.should_exit = True

        loop.add_reader(sys.stdin.fileno(), on_stdin)
    serving = loop.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.005)
    if serving.done():
        serving.result()
    print(json.dumps({"dashboard_url": url, "pid": os.getpid()}), flush=True)
    logger.info("dashboard serving at %s", url)
    try:
        await serving
    finally:
        await manager.shutdown()
        control.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.makedirs(os.path.join(args.session_dir, "logs"), exist_ok=True)
    logging.basicConfig(
        filename=os.path.join(args.session_dir, "logs", "dashboard.log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(args))
    except Exception:
        logger.exception("the dashboard failed")
        raise


if __name__ == "__main__":
    main()
