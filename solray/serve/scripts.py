"""The ``serve`` command: ``serve run``, ``serve build``, ``serve deploy``, ``serve status``,
``serve shutdown`` (Ray Serve's CLI).

``serve build module:app -o config.yaml`` writes the declarative config of an application;
``serve deploy config.yaml`` makes the cluster's Serve instance match it (apps not in the
file are deleted; changed code or options roll out without restarting the cluster).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
import yaml

import solray


def _connect(address: str | None) -> None:
    if not solray.is_initialized():
        try:
            solray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)
        except (ConnectionError, ValueError) as e:
            raise click.ClickException(str(e)) from None


def import_app(import_path: str, app_dir: str = ".") -> Any:
    """The ``Application`` at ``module:attribute`` (or ``module.attribute``)."""
    from solray.serve.deployment import Application, Deployment

    app_dir = os.path.abspath(app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    module_name, sep, attr = import_path.partition(":")
    if not sep:
        module_name, _, attr = import_path.rpartition(".")
    if not module_name or not attr:
        raise click.UsageError(f"Import path {import_path!r} must look like 'module:app'.")
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise click.UsageError(f"Module {module_name!r} has no attribute {attr!r}.") from None
    if isinstance(app, Deployment):
        app = app.bind()
    if not isinstance(app, Application):
        raise click.UsageError(f"{import_path} is a {type(app).__name__}, not a bound application (.bind()).")
    return app


def with_overrides(app: Any, overrides: dict[str, dict]) -> Any:
    """``app`` with the options a config file gives its deployments (by name)."""
    from solray.serve.deployment import Application

    def visit(value: Any) -> Any:
        if isinstance(value, Application):
            dep = value.deployment
            if dep.name in overrides:
                dep = dep.options(**overrides[dep.name])
            return Application(dep, tuple(visit(a) for a in value._args),
                               {k: visit(v) for k, v in value._kwargs.items()})
        if isinstance(value, (list, tuple)):
            return type(value)(visit(v) for v in value)
        if isinstance(value, dict):
            return {k: visit(v) for k, v in value.items()}
        return value

    return visit(app)


def _deployment_overrides(entries: list[dict]) -> dict[str, dict]:
    out = {}
    for entry in entries or []:
        entry = dict(entry)
        name = entry.pop("name", None)
        if not name:
            raise click.UsageError("Every deployment in the config needs a 'name'.")
        out[name] = entry
    return out


def deploy_config(config: dict, app_dir: str = ".") -> list[str]:
    """Make Serve match ``config`` (the ``serve build`` format); the apps' names."""
    from solray import serve
    from solray.serve import api

    apps = config.get("applications")
    if not isinstance(apps, list) or not apps:
        raise click.UsageError("The config must have a non-empty 'applications' list.")
    serve.start(http_options=config.get("http_options"))
    names = []
    for entry in apps:
        if "import_path" not in entry:
            raise click.UsageError("Every application in the config needs an 'import_path'.")
        name = entry.get("name", "default")
        # A local working_dir is where the app's modules are (the code then travels by value).
        working_dir = (entry.get("runtime_env") or {}).get("working_dir")
        folder = working_dir if isinstance(working_dir, str) and os.path.isdir(working_dir) else app_dir
        app = with_overrides(import_app(entry["import_path"], folder), _deployment_overrides(entry.get("deployments")))
        api.deploy_app(app, name, entry.get("route_prefix", "/"))
        names.append(name)
    for stale in set(serve.status().applications) - set(names):
        serve.delete(stale, _blocking=False)
    return names


@click.group(help="Serve applications on a solray cluster.")
def cli() -> None:
    pass


@cli.command(help="Run an application (module:app, or a config file) and block until Ctrl-C.")
@click.argument("target")
@click.option("--address", "-a", default=None, help="Cluster address (default: start a local cluster).")
@click.option("--app-dir", "-d", default=".", help="Folder to import the application from.")
@click.option("--name", default="default", help="Application name.")
@click.option("--route-prefix", default="/", help="HTTP route prefix.")
@click.option("--non-blocking", is_flag=True, help="Return once the application is running.")
def run(target: str, address: str | None, app_dir: str, name: str, route_prefix: str, non_blocking: bool) -> None:
    from solray import serve

    if address is not None:
        _connect(address)
    if target.endswith((".yaml", ".yml")):
        with open(target) as f:
            names = deploy_config(yaml.safe_load(f), app_dir)
        click.echo(f"Deployed applications {names} from {target}.")
    else:
        serve.run(import_app(target, app_dir), name=name, route_prefix=route_prefix)
    click.echo("Serving; press Ctrl-C to stop.", err=True)
    if non_blocking:
        return
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("Shutting down Serve.", err=True)
        serve.shutdown()


@cli.command(help="Write the declarative config of one or more applications.")
@click.argument("import_paths", nargs=-1, required=True)
@click.option("--app-dir", "-d", default=".", help="Folder to import the applications from.")
@click.option("--output-path", "-o", default=None, help="Write the YAML here (default: stdout).")
def build(import_paths: tuple[str, ...], app_dir: str, output_path: str | None) -> None:
    from solray.serve._internal.build import collect_deployments

    applications = []
    for i, path in enumerate(import_paths):
        app = import_app(path, app_dir)
        deployments = []
        for dep in collect_deployments(app):
            cfg = dep.config
            entry: dict[str, Any] = {"name": dep.name, "max_ongoing_requests": cfg.max_ongoing_requests}
            if cfg.autoscaling_config is not None:
                import dataclasses

                entry["autoscaling_config"] = dataclasses.asdict(cfg.autoscaling_config)
            else:
                entry["num_replicas"] = cfg.num_replicas
            if cfg.user_config is not None:
                entry["user_config"] = cfg.user_config
            if cfg.ray_actor_options:
                entry["ray_actor_options"] = cfg.ray_actor_options
            deployments.append(entry)
        applications.append({
            "name": "default" if len(import_paths) == 1 else f"app{i + 1}",
            "route_prefix": "/" if len(import_paths) == 1 else f"/app{i + 1}",
            "import_path": path,
            "runtime_env": {},
            "deployments": deployments,
        })
    config = {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": 8000},
              "applications": applications}
    text = yaml.safe_dump(config, sort_keys=False)
    if output_path:
        with open(output_path, "w") as f:
            f.write(text)
        click.echo(f"Config written to {output_path}.", err=True)
    else:
        click.echo(text)


@cli.command(help="Deploy the applications of a config file to a running cluster.")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--address", "-a", default=None, help="Cluster address (default: auto).")
@click.option("--app-dir", "-d", default=".", help="Folder to import the applications from.")
def deploy(config_file: str, address: str | None, app_dir: str) -> None:
    _connect(address)
    with open(config_file) as f:
        config = yaml.safe_load(f) or {}
    names = deploy_config(config, app_dir)
    click.echo(f"Sent deploy request for applications {names} successfully.")


@cli.command(help="Print the status of Serve's applications (YAML).")
@click.option("--address", "-a", default=None, help="Cluster address (default: auto).")
@click.option("--name", "-n", default=None, help="Only this application.")
def status(address: str | None, name: str | None) -> None:
    from solray import serve
    from solray.serve.schema import status_to_plain

    _connect(address)
    plain = status_to_plain(serve.status())
    if name is not None:
        plain["applications"] = {k: v for k, v in plain["applications"].items() if k == name}
    click.echo(yaml.safe_dump(plain, sort_keys=False))


@cli.command(help="Delete every application and stop Serve.")
@click.option("--address", "-a", default=None, help="Cluster address (default: auto).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def shutdown(address: str | None, yes: bool) -> None:
    from solray import serve

    if not yes:
        click.confirm("This will delete all applications and stop Serve. Continue?", abort=True)
    _connect(address)
    serve.shutdown()
    click.echo("Serve was shut down.")


if __name__ == "__main__":
    cli()
