"""Where running clusters are written down, so ``init(address="auto")`` can find them.

``solray start --head`` writes ``<root>/cluster-<port>.json`` (address, token, session dir;
mode 0600 since the token admits to the cluster) and points ``current_cluster.json`` at the
newest. Every node process started by ``solray start`` is listed under ``nodes/`` so
``solray stop`` can find it.
"""

from __future__ import annotations

import json
import os

ROOT = os.path.join("/tmp", "solray-sessions")


def root() -> str:
    """The folder for cluster files and sessions: ``$SOLRAY_TMPDIR`` or ``/tmp/solray-sessions``.

    Read on every call, not at import, so a process (a test, a tool) that sets the variable
    after importing solray still finds the clusters it starts."""
    return os.environ.get("SOLRAY_TMPDIR") or ROOT


def _write_private(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def write_cluster(info: dict) -> None:
    port = info["control_address"].rsplit(":", 1)[1]
    _write_private(os.path.join(root(), f"cluster-{port}.json"), info)
    _write_private(os.path.join(root(), "current_cluster.json"), info)
    try:
        store_token(info)
    except OSError as e:  # a read-only home: the cluster file still has the token
        import logging

        logging.getLogger(__name__).warning("could not store the cluster token in %s: %s", config_dir(), e)


# ---------------------------------------------------------------------------- the user's tokens
def config_dir() -> str:
    """The user's solray config folder: ``$SOLRAY_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/solray``, else ``~/.config/solray``."""
    explicit = os.environ.get("SOLRAY_CONFIG_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "solray")


def _token_path(control_address: str) -> str:
    safe = control_address.replace(":", "_").replace("/", "_").replace("[", "").replace("]", "")
    return os.path.join(config_dir(), "clusters", f"{safe}.json")


def store_token(info: dict) -> str:
    """Keep a head's token (mode 0600, folder 0700) in the user's config folder, keyed by
    its control address, so this user's CLI, SDK and drivers find it whatever temp folder
    they use. Returns the file's path."""
    folder = os.path.join(config_dir(), "clusters")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    path = _token_path(info["control_address"])
    _write_private(path, {k: info.get(k) for k in ("control_address", "dashboard_url", "token")})
    return path


def _stored() -> list[dict]:
    folder = os.path.join(config_dir(), "clusters")
    out = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        entry = _load(os.path.join(folder, name)) if name.endswith(".json") else None
        if entry and entry.get("token"):
            out.append(entry)
    return out


def stored_token(control_address: str | None = None, dashboard_url: str | None = None) -> str | None:
    """The token stored for a cluster, by its control address or its dashboard's URL."""
    for entry in _stored():
        if control_address and entry.get("control_address") == control_address:
            return entry["token"]
        if dashboard_url and (entry.get("dashboard_url") or "").rstrip("/") == dashboard_url.rstrip("/"):
            return entry["token"]
    return None


def forget_token(control_address: str) -> None:
    try:
        os.unlink(_token_path(control_address))
    except FileNotFoundError:
        pass


def record_node(pid: int, info: dict) -> None:
    _write_private(os.path.join(root(), "nodes", f"{pid}.json"), info)


def recorded_nodes() -> list[dict]:
    folder = os.path.join(root(), "nodes")
    out = []
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        try:
            with open(os.path.join(folder, name)) as f:
                out.append(json.load(f))
        except (OSError, ValueError):
            continue
    return out


def forget_node(pid: int) -> None:
    try:
        os.unlink(os.path.join(root(), "nodes", f"{pid}.json"))
    except FileNotFoundError:
        pass


def _load(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def resolve(address: str) -> dict:
    """Cluster info (addresses and token) for ``"auto"`` or ``"host:port"``."""
    address = address.removeprefix("ray://").removeprefix("solray://")
    if address == "auto":
        info = _load(os.path.join(root(), "current_cluster.json"))
        if info is None:
            raise ConnectionError(
                "Could not find any running solray cluster (address='auto'). Start one with "
                "'solray start --head' or call solray.init() without an address."
            )
    else:
        if ":" not in address:
            raise ValueError(f"Invalid cluster address {address!r}: expected HOST:PORT or 'auto'.")
        port = address.rsplit(":", 1)[1]
        info = _load(os.path.join(root(), f"cluster-{port}.json"))
        if info is None or info["control_address"] != address:
            info = {"control_address": address}
    token = (
        os.environ.get("SOLRAY_TOKEN") or os.environ.get("SOLRAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN")
        or info.get("token") or stored_token(control_address=info["control_address"])
    )
    if not token:
        raise ConnectionError(
            f"No token for the cluster at {address}: set SOLRAY_TOKEN to the cluster's token "
            f"(written on the head node in {config_dir()}/clusters/ and {root()}/cluster-<port>.json)."
        )
    return {**info, "token": token}
