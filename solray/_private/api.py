"""The implementation behind solray's top-level functions (``init``, ``get``, ``put``...)."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import secrets
import sys
from typing import Any

from solray._private import ids
from solray._private.config import INLINE_OBJECT_MAX_BYTES
from solray._private.objects.object_ref import ObjectRef, ObjectRefGenerator
from solray._private.serialization import serializer
from solray._private.worker import state
from solray._private.worker.core_worker import DRIVER, CoreWorker
from solray._private.worker.task_spec import ArgDep, FunctionDescriptor

logger = logging.getLogger("solray")

# Set for a process started on a particular node (a job's entrypoint with resources): its
# drivers attach to that node's daemon.
DRIVER_NODE_ENV = "SOLRAY_DRIVER_NODE_ID"
DEFAULT_DASHBOARD_PORT = 8265

_cluster: dict = {}


class RayContext(dict):
    """What ``init`` returns: a dict with attribute access (``ctx.address_info``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


def is_initialized() -> bool:
    return state.get_core_worker(required=False) is not None


def auto_init() -> None:
    with state.init_lock():
        if not is_initialized():
            init()


def _detect_gpus() -> int:
    """GPUs this machine exposes (CUDA_VISIBLE_DEVICES, else the NVIDIA driver's list)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        return len([d for d in os.listdir("/proc/driver/nvidia/gpus")])
    except OSError:
        return 0


def init(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict | None = None,
    object_store_memory: int | None = None,
    namespace: str | None = None,
    runtime_env: dict | None = None,
    ignore_reinit_error: bool = False,
    log_to_driver: bool = True,
    logging_level: int = logging.INFO,
    include_dashboard: bool | None = None,
    dashboard_host: str = "127.0.0.1",
    dashboard_port: int | None = None,
    configure_logging: bool = True,
    _temp_dir: str | None = None,
    **kwargs: Any,
) -> RayContext:
    with state.init_lock():
        if is_initialized():
            if ignore_reinit_error:
                return RayContext(_cluster.get("context", {}))
            raise RuntimeError(
                "Maybe you called solray.init twice by accident? This error can be suppressed "
                "by passing in 'ignore_reinit_error=True' or by calling 'solray.shutdown()' "
                "prior to 'solray.init()'."
            )
        unknown = set(kwargs) - {"_system_config", "local_mode", "_node_ip_address", "_redis_password", "_plasma_directory"}
        if unknown:
            raise TypeError(f"init() got unexpected keyword argument(s): {sorted(unknown)}")
        if configure_logging:
            logging.getLogger("solray").setLevel(logging_level)
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise TypeError("runtime_env must be a dict")
        for name, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("object_store_memory", object_store_memory)):
            if v is not None and (not isinstance(v, (int, float)) or v < 0):
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        address = address or os.environ.get("SOLRAY_ADDRESS") or os.environ.get("RAY_ADDRESS")
        runtime_env = _with_job_runtime_env(runtime_env)
        if runtime_env and "pip" in runtime_env:
            from solray._private.runtime_env import pip

            runtime_env = pip.normalize_runtime_env(runtime_env)  # reads a requirements file here
        if address and address not in ("local",):
            return _connect_existing(
                address, namespace, runtime_env, log_to_driver, kwargs.get("_node_ip_address")
            )
        return _start_local(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            resources=resources or {},
            object_store_memory=object_store_memory,
            namespace=namespace,
            runtime_env=runtime_env,
            log_to_driver=log_to_driver,
            temp_dir=_temp_dir,
            spill_dir=_spill_dir(kwargs.get("_system_config")),
            dashboard_port=_dashboard_port(include_dashboard, dashboard_host, dashboard_port),
            dashboard_host=dashboard_host,
        )


def _dashboard_port(include: bool | None, host: str, port: int | None) -> int | None:
    """The port of the local cluster's dashboard, or None for none. By default (``include
    =None``) there is one when its packages (``solray[default]``) are installed, unless
    ``SOLRAY_INCLUDE_DASHBOARD=0``; on 8265, or a free port when 8265 is taken."""
    import importlib.util
    import socket

    if include is None:
        setting = os.environ.get("SOLRAY_INCLUDE_DASHBOARD")
        if setting is not None:
            include = setting.lower() not in ("0", "false", "no")
        else:
            include = all(importlib.util.find_spec(m) is not None for m in ("starlette", "uvicorn"))
    if not include:
        return None
    wanted = port if port is not None else DEFAULT_DASHBOARD_PORT
    with socket.socket() as s:
        try:
            s.bind((host, wanted))
            return wanted
        except OSError:
            if port is not None:
                raise ValueError(f"dashboard_port {port} on {host} is already in use") from None
            s.bind((host, 0))
            return s.getsockname()[1]


def _spill_dir(system_config: dict | None) -> str | None:
    """The folder of Ray's ``_system_config={"object_spilling_config": json}`` (filesystem)."""
    import json

    raw = (system_config or {}).get("object_spilling_config")
    if not raw:
        return None
    cfg = json.loads(raw) if isinstance(raw, str) else raw
    if cfg.get("type", "filesystem") != "filesystem":
        raise ValueError(f"object_spilling_config: only the 'filesystem' type is supported, got {cfg.get('type')!r}")
    path = (cfg.get("params") or {}).get("directory_path")
    if isinstance(path, list):
        path = path[0] if path else None
    return path


def _with_job_runtime_env(runtime_env: dict | None) -> dict | None:
    """Inside a submitted job, the job's runtime_env (set by the job manager) is the default
    for the driver's tasks and actors; what ``init(runtime_env=...)`` names wins per key."""
    import json

    raw = os.environ.get("SOLRAY_JOB_RUNTIME_ENV")
    if not raw:
        return runtime_env
    job_env = json.loads(raw)
    if runtime_env is None:
        return job_env or None
    merged = {**job_env, **runtime_env}
    if "env_vars" in job_env and "env_vars" in runtime_env:
        merged["env_vars"] = {**job_env["env_vars"], **runtime_env["env_vars"]}
    return merged


def _connect_existing(address: str, namespace, runtime_env, log_to_driver, node_ip=None) -> RayContext:
    from solray._private import cluster_files

    info = cluster_files.resolve(address)
    # A job's entrypoint started on some node (entrypoint resources) attaches to that node.
    node = _pick_local_node(info["control_address"], info["token"], node_ip, os.environ.get(DRIVER_NODE_ENV))
    info.update(
        daemon_address=node["address"],
        node_id=node["node_id"],
        node_ip=node["node_ip"],
        shm_dir=node["shm_dir"],
        session_dir=node["session_dir"],
    )
    return _start_driver(info, namespace, runtime_env, log_to_driver, head_proc=None)


def query_control(control_address: str, token: str, method: str, payload: Any = None, timeout: float = 10) -> Any:
    """One request to a cluster's control service, from a process that is not a driver."""
    import asyncio

    from solray._private.rpc.connection import connect

    async def go():
        host, port = control_address.rsplit(":", 1)
        conn = await connect(host, int(port), token, name="control")
        try:
            return await asyncio.wait_for(conn.request(method, payload), timeout)
        finally:
            conn.close()

    try:
        return asyncio.run(go())
    except OSError as e:
        raise ConnectionError(f"Could not connect to the solray cluster at {control_address}: {e}") from e


def _pick_local_node(control_address: str, token: str, node_ip: str | None = None, node_id: str | None = None) -> dict:
    """The node whose daemon the driver attaches to: ``node_id``, else the one at ``node_ip``
    (Ray's ``_node_ip_address``: the driver runs on that node), else a node on this machine."""
    import socket
    import time

    # Right after a head (re)start the nodes are still (re)registering: give them a moment.
    deadline = time.monotonic() + 10
    while True:
        nodes = [n for n in query_control(control_address, token, "get_nodes") if n.get("alive")]
        if nodes and (node_ip is None or any(n["node_ip"] == node_ip for n in nodes)):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not nodes:
        raise ConnectionError(f"The cluster at {control_address} has no live nodes.")
    for n in nodes:
        if node_id and n["node_id"] == node_id:
            return n
    if node_ip is not None:
        for n in nodes:
            if n["node_ip"] == node_ip:
                return n
        raise ConnectionError(f"The cluster at {control_address} has no live node at {node_ip}.")
    host = control_address.rsplit(":", 1)[0]
    local_ips = {host, "127.0.0.1"}
    try:
        local_ips.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    for pref in (lambda n: n.get("is_head") and n["node_ip"] in local_ips, lambda n: n["node_ip"] in local_ips, lambda n: True):
        for n in nodes:
            if pref(n):
                return n
    return nodes[0]


def _start_local(*, num_cpus, num_gpus, resources, object_store_memory, namespace, runtime_env, log_to_driver, temp_dir,
                 spill_dir=None, dashboard_port=None, dashboard_host="127.0.0.1") -> RayContext:
    from solray._private import cluster_files
    from solray._private.node import launcher

    total, store = launcher.default_resources(num_cpus, num_gpus, resources, object_store_memory)
    proc, info = launcher.start_node(
        head=True,
        token=secrets.token_hex(16),
        session_dir=launcher.new_session_dir(temp_dir or cluster_files.root()),
        resources=total,
        object_store_memory=store,
        embedded=True,
        spill_dir=spill_dir,
        dashboard_port=dashboard_port,
        dashboard_host=dashboard_host,
    )
    return _start_driver(info, namespace, runtime_env, log_to_driver, head_proc=proc)


def _start_driver(info: dict, namespace, runtime_env, log_to_driver, head_proc) -> RayContext:
    worker = CoreWorker(
        mode=DRIVER,
        token=info["token"],
        node_id=info["node_id"],
        node_ip=info.get("node_ip", "127.0.0.1"),
        daemon_address=info["daemon_address"],
        control_address=info["control_address"],
        shm_dir=info["shm_dir"],
        session_dir=info["session_dir"],
        namespace=namespace,
        log_to_driver=log_to_driver,
        runtime_env=runtime_env,
    )
    worker.on_daemon_lost = lambda: logger.error("lost the connection to the local node daemon")
    try:
        worker.start()
    except BaseException:
        if head_proc is not None:
            head_proc.kill()
        raise
    state.set_core_worker(worker)
    ctx = RayContext(
        address_info={
            "node_ip_address": worker.node_ip,
            "address": info["control_address"],
            "gcs_address": info["control_address"],
            "session_dir": info["session_dir"],
            "node_id": info["node_id"],
        },
        address=info["control_address"],
        gcs_address=info["control_address"],
        dashboard_url=info.get("dashboard_url", ""),
        node_id=info["node_id"],
        session_dir=info["session_dir"],
        namespace=worker.namespace,
        python_version=".".join(map(str, sys.version_info[:3])),
    )
    _cluster.update(head_proc=head_proc, context=dict(ctx), info=info)
    return ctx


def shutdown(_exiting_interpreter: bool = False) -> None:
    with state.init_lock():
        worker = state.get_core_worker(required=False)
        if worker is None or worker.mode != DRIVER:
            # Inside a task or actor the process belongs to the cluster, not to user code.
            return
        state.set_core_worker(None)
        worker.shutdown()
        proc = _cluster.pop("head_proc", None)
        if proc is not None:
            try:
                proc.stdin.close()
                proc.wait(timeout=5)
            except Exception:
                proc.kill()
                proc.wait()
        _cluster.clear()


atexit.register(shutdown, True)


# ---------------------------------------------------------------------- objects
def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    worker = state.get_core_worker()
    if isinstance(object_refs, ObjectRef):
        return worker.get([object_refs], timeout)[0]
    if isinstance(object_refs, ObjectRefGenerator):
        return worker.get(list(object_refs), timeout)
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(
            f"'object_refs' must either be an ObjectRef or a list of ObjectRefs, got {type(object_refs).__name__}"
        )
    for r in object_refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"'object_refs' must either be an ObjectRef or a list of ObjectRefs, got a list containing {type(r).__name__}")
    return worker.get(list(object_refs), timeout)


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    return state.get_core_worker().put(value)


def wait(
    object_refs: list[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    worker = state.get_core_worker()
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of ObjectRef, got a single ObjectRef")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ObjectRef, got {type(object_refs).__name__}")
    for r in object_refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"wait() expected a list of ObjectRef, got list containing {type(r).__name__}")
    if not object_refs:
        return [], []  # as Ray: nothing to wait for is not an error
    if len({r.binary() for r in object_refs}) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns}.")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided to wait().")
    if timeout is not None and timeout < 0:
        raise ValueError(f"The 'timeout' argument must be non-negative, got {timeout}")
    ready_ids = worker.wait_ready(list(object_refs), num_returns, timeout)
    ready, not_ready = [], []
    for r in object_refs:
        if r._id in ready_ids and len(ready) < num_returns:
            ready.append(r)
        else:
            not_ready.append(r)
    return ready, not_ready


# ---------------------------------------------------------------------- submission helpers
def export(obj: Any) -> FunctionDescriptor:
    """Pickle a function or class once; its id is the hash of the bytes."""
    try:
        blob = serializer.dumps_function(obj)
    except Exception as e:
        from solray._private.serialization.inspect import describe_unserializable

        raise TypeError(describe_unserializable(obj, getattr(obj, "__qualname__", repr(obj)))) from e
    fid = hashlib.sha1(blob).digest()
    return FunctionDescriptor(fid, blob, getattr(obj, "__qualname__", str(obj)), getattr(obj, "__module__", ""))


def pack_args(worker: CoreWorker, args: tuple, kwargs: dict, what: str) -> tuple[bytes | None, list, list]:
    """Pickle arguments; return (blob, top-level dependency refs, refs nested in args)."""
    if not args and not kwargs:
        return None, [], []
    deps: list[ObjectRef] = []

    def sub(v):
        if isinstance(v, ObjectRef):
            deps.append(v)
            return ArgDep(len(deps) - 1)
        return v

    a = [sub(x) for x in args]
    k = {key: sub(v) for key, v in kwargs.items()}
    try:
        so = serializer.serialize((a, k))
    except Exception as e:
        raise _arg_error(args, kwargs, what, e) from e
    if so.total_bytes > INLINE_OBJECT_MAX_BYTES:
        # Large arguments go to the object store once and travel by reference.
        for i, v in enumerate(a):
            if type(v) is not ArgDep and _size_of(v) > INLINE_OBJECT_MAX_BYTES:
                a[i] = sub(worker.put(v))
        for key, v in k.items():
            if type(v) is not ArgDep and _size_of(v) > INLINE_OBJECT_MAX_BYTES:
                k[key] = sub(worker.put(v))
        so = serializer.serialize((a, k))
    blob = serializer._serialize_in_band((a, k), 0, []).data if so.buffers else so.data
    return blob, deps, list(so.contained)


def _size_of(v: Any) -> int:
    try:
        return serializer.serialize(v).total_bytes
    except Exception:
        return 0


def _arg_error(args: tuple, kwargs: dict, what: str, cause: Exception) -> TypeError:
    from solray._private.serialization.inspect import describe_unserializable

    for i, v in enumerate(args):
        try:
            serializer.serialize(v)
        except Exception:
            return TypeError(f"Could not serialize the arguments of {what}. " + describe_unserializable(v, f"args[{i}]"))
    for key, v in kwargs.items():
        try:
            serializer.serialize(v)
        except Exception:
            return TypeError(f"Could not serialize the arguments of {what}. " + describe_unserializable(v, f"kwargs[{key!r}]"))
    return TypeError(f"Could not serialize the arguments of {what}: {cause}")


def new_task_id() -> bytes:
    return ids.new_id()
