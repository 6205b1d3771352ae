"""The ``solray`` command: start/stop/status of clusters, version, microbenchmark."""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import sys
import time

import click

from solray._version import __version__


def _clean_errors(command):
    """A node that cannot start or reach its head is a one-line error, not a traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ConnectionError, RuntimeError) as e:
            raise click.ClickException(str(e).strip()) from e

    return run


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@click.group()
@click.version_option(__version__, prog_name="solray")
def cli() -> None:
    """solray: Ray's API and libraries, rebuilt in Python."""


@cli.command()
@click.option("--head", is_flag=True, help="Start the head node (control service + node).")
@click.option("--address", default=None, help="HOST:PORT of the head to join (worker nodes).")
@click.option("--port", type=int, default=6379, show_default=True, help="Control service port (head).")
@click.option("--dashboard-port", type=int, default=8265, show_default=True)
@click.option("--dashboard-host", default="127.0.0.1", show_default=True,
              help="Address the dashboard (Jobs REST API) binds; 0.0.0.0 exposes it to the network.")
@click.option("--include-dashboard", type=bool, default=True, show_default=True,
              help="Start the dashboard server on the head.")
@click.option("--num-cpus", type=float, default=None)
@click.option("--num-gpus", type=float, default=None)
@click.option("--resources", default="{}", help='Custom resources as JSON, e.g. \'{"accel": 2}\'.')
@click.option("--labels", default="", help="This node's labels: key1=value1,key2=value2 (or a JSON object).")
@click.option("--node-ip-address", default="127.0.0.1", show_default=True)
@click.option("--object-store-memory", type=int, default=None)
@click.option("--storage", default=None, help="SQLite file that keeps the head's state across restarts.")
@click.option("--temp-dir", default=None)
@click.option("--block", is_flag=True, help="Stay in the foreground until the node exits.")
@_clean_errors
def start(head, address, port, dashboard_port, dashboard_host, include_dashboard, num_cpus, num_gpus, resources, labels,
          node_ip_address, object_store_memory, storage, temp_dir, block) -> None:
    """Start a node of a cluster (``--head`` for the first one)."""
    from solray._private import cluster_files
    from solray._private.node import launcher

    if head == bool(address):
        raise click.UsageError("Pass either --head or --address=HOST:PORT.")
    try:
        extra = json.loads(resources)
    except ValueError as e:
        raise click.BadParameter(f"--resources must be JSON: {e}") from e
    node_labels = _parse_labels(labels)
    root = temp_dir or cluster_files.root()
    total, store = launcher.default_resources(num_cpus, num_gpus, extra, object_store_memory)
    if head:
        token = os.environ.get("SOLRAY_TOKEN") or os.environ.get("SOLRAY_AUTH_TOKEN") or secrets.token_hex(16)
        session_dir = launcher.new_session_dir(root)
        storage = storage or os.path.join(session_dir, "control.sqlite")
        proc, info = launcher.start_node(
            head=True, token=token, session_dir=session_dir, resources=total, object_store_memory=store,
            node_ip=node_ip_address, port=port, storage=storage,
            dashboard_port=dashboard_port if include_dashboard else None, dashboard_host=dashboard_host,
            labels=node_labels,
        )
        cluster_files.write_cluster({**info, "storage": storage})
        click.echo(f"solray head started at {info['control_address']} (session {session_dir}).")
        click.echo(f"  connect a driver: solray.init(address='{info['control_address']}') or address='auto'")
        click.echo(f"  add a node:       solray start --address={info['control_address']}")
        if info.get("dashboard_url"):
            click.echo(f"  dashboard / Jobs API: {info['dashboard_url']} (send 'Authorization: Bearer <token>';")
            click.echo(f"    the token is in {cluster_files.config_dir()}/clusters/, or set SOLRAY_AUTH_TOKEN at start)")
        elif info.get("dashboard_error"):
            click.echo(f"  warning: {info['dashboard_error']}", err=True)
    else:
        cluster = cluster_files.resolve(address)
        session_dir = launcher.new_session_dir(root)
        proc, info = launcher.start_node(
            head=False, token=cluster["token"], session_dir=session_dir, resources=total,
            object_store_memory=store, node_ip=node_ip_address, control_address=cluster["control_address"],
            labels=node_labels,
        )
        click.echo(f"solray node {info['node_id'][:12]} joined {cluster['control_address']}.")
    cluster_files.record_node(proc.pid, {**info, "pid": proc.pid, "head": head})
    if block:
        # SIGTERM (solray stop, a supervisor) stops the node as Ctrl-C does.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        finally:
            cluster_files.forget_node(proc.pid)


def _parse_labels(text: str) -> dict[str, str]:
    """``--labels``: ``k1=v1,k2=v2`` as Ray's CLI takes them, or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            labels = json.loads(text)
        except ValueError as e:
            raise click.BadParameter(f"--labels is not valid JSON: {e}") from e
    else:
        labels = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"--labels: {item!r} is not key=value")
            labels[key.strip()] = value.strip()
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise click.BadParameter("--labels: keys and values must be strings")
    return labels


@cli.command()
@click.option("--force", is_flag=True, help="SIGKILL instead of a graceful stop.")
@click.option("--grace-period", type=float, default=10.0, show_default=True)
def stop(force: bool, grace_period: float) -> None:
    """Stop every solray node started on this machine."""
    import psutil

    from solray._private import cluster_files

    nodes = cluster_files.recorded_nodes()
    procs = []
    for node in nodes:
        try:
            p = psutil.Process(node["pid"])
            p.send_signal(signal.SIGKILL if force else signal.SIGTERM)
            procs.append(p)
        except psutil.NoSuchProcess:
            pass
        cluster_files.forget_node(node["pid"])
    _, alive = psutil.wait_procs(procs, timeout=grace_period)
    for p in alive:
        p.kill()
    # The stopped heads' address files go too, so "auto" and HOST:PORT stop resolving to them.
    names = ["current_cluster.json"] + [
        f"cluster-{n['control_address'].rsplit(':', 1)[1]}.json"
        for n in nodes if n.get("head") and n.get("control_address")
    ]
    for name in names:
        try:
            os.unlink(os.path.join(cluster_files.root(), name))
        except FileNotFoundError:
            pass
    for n in nodes:
        if n.get("head") and n.get("control_address"):
            cluster_files.forget_token(n["control_address"])
    click.echo(f"Stopped {len(procs)} solray node process(es).")


@cli.command()
@click.option("--address", default=None, help="Cluster address (default: RAY_ADDRESS or 'auto').")
def status(address: str | None) -> None:
    """Nodes, resources used/total and pending demands of a running cluster."""
    from solray._private import cluster_files
    from solray._private.api import query_control

    address = address or os.environ.get("SOLRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        info = cluster_files.resolve(address)
        nodes = query_control(info["control_address"], info["token"], "get_nodes")
    except (ConnectionError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"======== Cluster status: {info['control_address']} ========")
    alive = [n for n in nodes if n.get("alive")]
    dead = [n for n in nodes if not n.get("alive")]
    click.echo(f"Node status\n Active: {len(alive)}\n Dead: {len(dead)}")
    for n in alive:
        click.echo(f"  {n['node_id'][:12]} {n['node_ip']}{' (head)' if n.get('is_head') else ''}")
    click.echo("Resources (used / total)")
    totals: dict = {}
    avail: dict = {}
    pending: dict = {}
    for n in alive:
        for k, v in n["resources_total"].items():
            totals[k] = totals.get(k, 0) + v
        for k, v in n["resources_available"].items():
            avail[k] = avail.get(k, 0) + v
        for shape, count in (n.get("pending_demands") or {}).items():
            pending[shape] = pending.get(shape, 0) + count
    for k in sorted(totals):
        if k.startswith("node:"):
            continue
        used = totals[k] - avail.get(k, 0)
        if k in ("memory", "object_store_memory"):
            click.echo(f"  {used / 2**30:.2f}/{totals[k] / 2**30:.2f} GiB {k}")
        else:
            click.echo(f"  {used:g}/{totals[k]:g} {k}")
    click.echo("Pending demands")
    if not pending:
        click.echo("  (no resource demands)")
    for shape, count in pending.items():
        click.echo(f"  {shape}: {count}+ pending tasks/actors")


@cli.command()
@click.option("--only", default=None, help="Run only the benchmarks whose name contains this.")
def microbenchmark(only: str | None) -> None:
    """Measure core operations (Ray-comparable names)."""
    import solray
    from solray._private import microbenchmark as mb

    started = time.perf_counter()
    for name, value, unit in mb.run(only=only):
        click.echo(f"{name:<48} {value:>14,.2f} {unit}")
    click.echo(f"(took {time.perf_counter() - started:.1f} s)")
    if solray.is_initialized():
        solray.shutdown()


def _add_job_commands() -> None:
    from solray.cli.job import job
    from solray.cli.state import COMMANDS

    cli.add_command(job)
    for command in COMMANDS:  # list, get, summary, timeline (the state API)
        cli.add_command(command)
    from solray.cli.logs import logs_cmd

    cli.add_command(logs_cmd)
    from solray.rllib.cli import rllib_cli

    cli.add_command(rllib_cli)
    from solray.cli.cluster_up import COMMANDS as CLUSTER_COMMANDS

    for command in CLUSTER_COMMANDS:  # up, down (cluster.yaml with the autoscaler)
        cli.add_command(command)


_add_job_commands()


def main() -> None:
    cli(prog_name="solray")


if __name__ == "__main__":
    sys.exit(main())
