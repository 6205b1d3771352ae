"""``solray job ...``: submit, follow, stop, list and delete jobs (Ray's ``ray job``).

The cluster is found from ``--address`` (a dashboard URL like http://127.0.0.1:8265, a
cluster address, or ``auto``), else ``RAY_API_SERVER_ADDRESS``/``SOLRAY_ADDRESS``/``RAY_ADDRESS``,
else the cluster started on this machine. Extra HTTP headers come from ``--headers`` or
``SOLRAY_JOB_HEADERS``/``RAY_JOB_HEADERS`` (JSON), e.g. ``{"Authorization": "Bearer <token>"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pprint
import shlex
import sys
from typing import Any

import click


def _headers(headers: str | None) -> dict | None:
    raw = headers if headers is not None else os.environ.get("SOLRAY_JOB_HEADERS") or os.environ.get("RAY_JOB_HEADERS")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise click.BadParameter(f'headers must be JSON like {{"KEY": "VALUE"}}, got {raw!r}: {e}') from e
    if not isinstance(value, dict):
        raise click.BadParameter(f"headers must be a JSON object, got {raw!r}")
    return value


def _verify(value: str) -> bool | str:
    return {"true": True, "false": False}.get(value.lower(), value)


def _client(address: str | None, headers: str | None, verify: str):
    from solray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address, headers=_headers(headers), verify=_verify(verify))
    except (ConnectionError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Job submission server address: {client.get_address()}", err=True)
    return client


def _common(f):
    f = click.option("--address", default=None, help="Dashboard URL or cluster address (default: RAY_ADDRESS / local cluster).")(f)
    f = click.option("--headers", default=None, help='HTTP headers as JSON, e.g. \'{"Authorization": "Bearer TOKEN"}\'.')(f)
    f = click.option("--verify", default="True", show_default=True, help="Verify TLS certificates: True, False or a CA path.")(f)
    return f


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise click.BadParameter(f"{name} must be JSON: {e}") from e


def _runtime_env(runtime_env: str | None, runtime_env_json: str | None, working_dir: str | None) -> dict:
    if runtime_env and runtime_env_json:
        raise click.UsageError("Pass only one of --runtime-env and --runtime-env-json.")
    env: dict = {}
    if runtime_env:
        with open(runtime_env) as f:
            text = f.read()
        try:
            import yaml

            env = yaml.safe_load(text) or {}
        except ImportError:
            env = json.loads(text)
    elif runtime_env_json:
        env = _json_option(runtime_env_json, "--runtime-env-json")
    if working_dir is not None:
        env["working_dir"] = working_dir
    return env


async def _tail(client, job_id: str) -> None:
    async for chunk in client.tail_job_logs(job_id):
        click.echo(chunk, nl=False)


def _report_status(client, job_id: str):
    info = client.get_job_info(job_id)
    click.echo(f"Status for job '{job_id}': {info.status}")
    if info.message:
        click.echo(f"Status message: {info.message}")
    return info.status


@click.group("job")
def job() -> None:
    """Submit, follow, stop, list and delete jobs."""


@job.command()
@_common
@click.option("--job-id", default=None, hidden=True, help="Deprecated: use --submission-id.")
@click.option("--submission-id", default=None, help="Id for the job (default: generated).")
@click.option("--runtime-env", default=None, help="Path to a YAML (or JSON) file with a runtime_env.")
@click.option("--runtime-env-json", default=None, help="runtime_env as JSON.")
@click.option("--working-dir", default=None, help="Local folder or .zip uploaded as the job's working_dir.")
@click.option("--metadata-json", default=None, help="JSON dict of metadata to attach to the job.")
@click.option("--entrypoint-num-cpus", type=float, default=None)
@click.option("--entrypoint-num-gpus", type=float, default=None)
@click.option("--entrypoint-memory", type=int, default=None)
@click.option("--entrypoint-resources", default=None, help="JSON dict of custom resources for the entrypoint.")
@click.option("--no-wait", is_flag=True, help="Return after submitting instead of following the logs.")
@click.argument("entrypoint", nargs=-1, required=True, type=click.UNPROCESSED)
def submit(address, headers, verify, job_id, submission_id, runtime_env, runtime_env_json, working_dir,
           metadata_json, entrypoint_num_cpus, entrypoint_num_gpus, entrypoint_memory, entrypoint_resources,
           no_wait, entrypoint) -> None:
    """Submit a job: ``solray job submit [OPTIONS] -- python script.py``.

    Follows the job's logs until it ends (exit code 1 if it failed) unless --no-wait.
    """
    from solray.job_submission import JobStatus

    client = _client(address, headers, verify)
    env = _runtime_env(runtime_env, runtime_env_json, working_dir)
    try:
        sid = client.submit_job(
            entrypoint=shlex.join(entrypoint),
            submission_id=submission_id or job_id,
            runtime_env=env,
            metadata=_json_option(metadata_json, "--metadata-json"),
            entrypoint_num_cpus=entrypoint_num_cpus,
            entrypoint_num_gpus=entrypoint_num_gpus,
            entrypoint_memory=entrypoint_memory,
            entrypoint_resources=_json_option(entrypoint_resources, "--entrypoint-resources"),
        )
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    msg = f"Job '{sid}' submitted successfully"
    click.echo(f"\n{'-' * len(msg)}\n{msg}\n{'-' * len(msg)}\n")
    click.echo("Next steps")
    click.echo(f"  Query the logs of the job:\n    solray job logs {sid}")
    click.echo(f"  Query the status of the job:\n    solray job status {sid}")
    click.echo(f"  Request the job to be stopped:\n    solray job stop {sid}\n")
    sys.stdout.flush()
    if no_wait:
        return
    click.echo("Tailing logs until the job exits (disable with --no-wait):")
    asyncio.run(_tail(client, sid))
    status = _report_status(client, sid)
    if status == JobStatus.SUCCEEDED:
        click.echo(f"\n{'-' * 40}\nJob '{sid}' succeeded\n{'-' * 40}")
    elif status == JobStatus.STOPPED:
        click.echo(f"Job '{sid}' was stopped")
    else:
        click.echo(f"Job '{sid}' failed", err=True)
        sys.exit(1)


@job.command()
@_common
@click.argument("job_id")
def status(address, headers, verify, job_id) -> None:
    """Print a job's status and status message."""
    client = _client(address, headers, verify)
    try:
        _report_status(client, job_id)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e


@job.command()
@_common
@click.option("--no-wait", is_flag=True, help="Return once the stop was requested.")
@click.argument("job_id")
def stop(address, headers, verify, no_wait, job_id) -> None:
    """Stop a job (SIGTERM, then SIGKILL after a grace period)."""
    import time

    client = _client(address, headers, verify)
    click.echo(f"Attempting to stop job '{job_id}'")
    try:
        stopped = client.stop_job(job_id)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e
    if not stopped:
        click.echo(f"Job '{job_id}' was not running (status {client.get_job_status(job_id)}).")
        return
    if no_wait:
        return
    click.echo(f"Waiting for job '{job_id}' to exit (disable with --no-wait):")
    while True:
        state = client.get_job_status(job_id)
        if state.is_terminal():
            click.echo(f"Job '{job_id}' has exited. Status: {state}")
            return
        time.sleep(0.2)


@job.command()
@_common
@click.argument("job_id")
def delete(address, headers, verify, job_id) -> None:
    """Delete a finished job's record (its log file stays on the head)."""
    client = _client(address, headers, verify)
    try:
        client.delete_job(job_id)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Job '{job_id}' deleted successfully")


@job.command()
@_common
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends.")
@click.argument("job_id")
def logs(address, headers, verify, follow, job_id) -> None:
    """Print a job's output."""
    client = _client(address, headers, verify)
    try:
        if follow:
            asyncio.run(_tail(client, job_id))
        else:
            click.echo(client.get_job_logs(job_id), nl=False)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e


@job.command(name="list")
@_common
def list_jobs(address, headers, verify) -> None:
    """List every job the cluster knows (submitted and plain drivers)."""
    client = _client(address, headers, verify)
    click.echo(pprint.pformat(client.list_jobs()))
