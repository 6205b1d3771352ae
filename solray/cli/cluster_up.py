"""``solray up`` / ``solray down``: a cluster from a cluster.yaml (``local`` provider)."""

from __future__ import annotations

import click


@click.command()
@click.argument("cluster_config_file")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (accepted for Ray's CLI).")
def up(cluster_config_file: str, yes: bool) -> None:
    """Start the head of a cluster and its autoscaler, which adds and removes worker nodes."""
    from solray.autoscaler._internal.cluster_config import ClusterConfigError
    from solray.autoscaler._internal.launcher import cluster_up

    try:
        cluster_up(cluster_config_file, click.echo)
    except (ClusterConfigError, FileNotFoundError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e


@click.command()
@click.argument("cluster_config_file")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (accepted for Ray's CLI).")
def down(cluster_config_file: str, yes: bool) -> None:
    """Stop the autoscaler, every worker node it started, and the head."""
    from solray.autoscaler._internal.cluster_config import ClusterConfigError
    from solray.autoscaler._internal.launcher import cluster_down

    try:
        cluster_down(cluster_config_file, click.echo)
    except (ClusterConfigError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e


COMMANDS = [up, down]
