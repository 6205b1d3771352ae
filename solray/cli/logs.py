"""``solray logs``: list and print the cluster's log files (Ray's ``ray logs``).

    solray logs                          the head node's log files, by group
    solray logs 'worker-*' [--node-id]   files matching a glob; one match is printed
    solray logs FILE --tail 100 -f       a file's last lines, then what is appended
    solray logs --actor-id ID            the log of an actor's worker (also: solray logs actor --id ID)
    solray logs --task-id ID             the log of the worker that ran a task
    solray logs --job-id SUBMISSION_ID   a submitted job's driver output
    solray logs --pid PID --node-id ID   a worker's log by pid

The cluster is ``--address`` (a dashboard URL, or control ``host:port``/``auto``), else
``RAY_ADDRESS``/``SOLRAY_ADDRESS``, else the cluster started on this machine.
"""

from __future__ import annotations

import click

from solray.util.state.common import RayStateApiException
from solray.util.state.log_api import get_log, list_logs

KINDS = {"actor": "actor_id", "task": "task_id", "job": "submission_id", "worker": "pid"}


def _fail(e: BaseException) -> click.ClickException:
    return click.ClickException(str(e).strip() or type(e).__name__)


def _print_log(follow: bool, **kwargs) -> None:
    try:
        for chunk in get_log(follow=follow, **kwargs):
            click.echo(chunk, nl=False)
    except KeyboardInterrupt:
        pass
    except (ConnectionError, RayStateApiException, ValueError, LookupError) as e:
        raise _fail(e) from e


@click.command(name="logs")
@click.argument("glob_or_kind", required=False)
@click.option("--id", "id_", default=None, help="With KIND (actor, task, job, worker): its id (or pid).")
@click.option("--node-id", default=None, help="The node whose files to list or read (default: the head).")
@click.option("--node-ip", default=None, help="The node, by IP address.")
@click.option("--actor-id", default=None, help="Print the log of this actor's worker.")
@click.option("--task-id", default=None, help="Print the log of the worker that ran this task.")
@click.option("--job-id", "--submission-id", "job_id", default=None, help="Print this job submission's driver output.")
@click.option("--pid", type=int, default=None, help="Print the log of the worker with this pid (on --node-id).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what is appended (Ctrl-C stops).")
@click.option("--tail", type=int, default=1000, show_default=True, help="Lines from the end to print; -1: all.")
@click.option("--interval", type=float, default=None, help="Seconds between checks for new output with --follow.")
@click.option("--address", default=None, help="Dashboard URL, control HOST:PORT or 'auto'.")
@click.option("--timeout", type=int, default=30, show_default=True)
def logs_cmd(glob_or_kind, id_, node_id, node_ip, actor_id, task_id, job_id, pid, follow, tail, interval, address,
             timeout) -> None:
    """List the cluster's log files, or print one (by name, actor, task, job or worker)."""
    common = {"address": address, "tail": tail, "timeout": timeout, "_interval": interval}
    if glob_or_kind in KINDS and (id_ is not None or glob_or_kind == "job"):
        if id_ is None:
            raise click.UsageError(f"'solray logs {glob_or_kind}' needs --id.")
        key = KINDS[glob_or_kind]
        value = int(id_) if key == "pid" else id_
        _print_log(follow, node_id=node_id, node_ip=node_ip, **{key: value}, **common)
        return
    named = {k: v for k, v in (("actor_id", actor_id), ("task_id", task_id), ("submission_id", job_id)) if v}
    if pid is not None:
        named["pid"] = pid
    if named:
        _print_log(follow, node_id=node_id, node_ip=node_ip, **named, **common)
        return
    try:
        found = list_logs(address=address, node_id=node_id, node_ip=node_ip, glob_filter=glob_or_kind or "*",
                          timeout=timeout)
    except (ConnectionError, RayStateApiException, ValueError, LookupError) as e:
        raise _fail(e) from e
    files = [f for group in found.values() for f in group]
    if glob_or_kind and (len(files) == 1 or glob_or_kind in files):
        name = glob_or_kind if glob_or_kind in files else files[0]
        _print_log(follow, node_id=node_id, node_ip=node_ip, filename=name, **common)
        return
    if glob_or_kind and not files:
        raise click.ClickException(f"No log file matches {glob_or_kind!r} on that node (solray logs lists them).")
    for group in sorted(found):
        click.echo(f"{group}:")
        for name in found[group]:
            click.echo(f"  {name}")
    if glob_or_kind and len(files) > 1:
        click.echo(f"({len(files)} files match {glob_or_kind!r}; name one to print it.)")
