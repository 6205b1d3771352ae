"""working_dir packages: zip a local folder, name it by its content hash, unpack it once.

A package is named ``gcs://_ray_pkg_<hash>.zip`` (the naming Ray's clients use, so Ray's
own ``JobSubmissionClient`` and ours upload to the same place): the hash covers every
file's relative path and bytes, so an unchanged folder is uploaded once and a changed one
gets a new name. Packages live in the control service's key-value store (durable, reachable
from every node); each node unpacks a package once into its cache folder, atomically, so
concurrent users of the same package never see a half-written folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator

PKG_PREFIX = "_ray_pkg_"
GCS_PROTOCOL = "gcs"
# The control-service KV namespace that holds uploaded packages (keyed by their URI).
KV_NAMESPACE_PACKAGES = "runtime_env_packages"
# Ray's limit comes from its largest gRPC message; ours keeps the control service's memory sane.
MAX_PACKAGE_BYTES = int(os.environ.get("SOLRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES", 512 * 1024 * 1024))
DEFAULT_EXCLUDES = [
    x.strip()
    for x in os.environ.get("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES", ".git,.venv,venv,__pycache__").split(",")
    if x.strip()
]
_IGNORE_FILES = (".gitignore", ".rayignore")


class PackageTooLargeError(ValueError):
    """The package exceeds MAX_PACKAGE_BYTES."""


def parse_uri(uri: str) -> tuple[str, str]:
    """``gcs://_ray_pkg_x.zip`` -> ``("gcs", "_ray_pkg_x.zip")``."""
    if "://" not in uri:
        raise ValueError(f"{uri!r} is not a package URI (expected PROTOCOL://NAME).")
    protocol, name = uri.split("://", 1)
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"Invalid package name in URI {uri!r}.")
    return protocol, name


def is_package_uri(value: str) -> bool:
    return isinstance(value, str) and "://" in value


# ---------------------------------------------------------------------------- excludes
def _match(rel: str, is_dir: bool, pattern: str) -> bool:
    """gitignore-style matching of a slash-separated relative path against one pattern."""
    pattern = pattern.strip()
    if not pattern or pattern.startswith("#"):
        return False
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    if dir_only and not is_dir:
        return False
    if "/" in pattern:  # anchored at the package root
        return fnmatch.fnmatchcase(rel, pattern.lstrip("/"))
    return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)


def _excluded(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    excluded = False
    for p in patterns:
        if p.startswith("!"):
            if excluded and _match(rel, is_dir, p[1:]):
                excluded = False
        elif not excluded and _match(rel, is_dir, p):
            excluded = True
    return excluded


def _ignore_file_patterns(root: str) -> list[str]:
    out: list[str] = []
    for name in _IGNORE_FILES:
        try:
            with open(os.path.join(root, name)) as f:
                out += [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
        except OSError:
            pass
    return out


def iter_files(root: str, excludes: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """(relative path, absolute path) of every file to package, sorted, excludes applied."""
    patterns = DEFAULT_EXCLUDES + list(excludes or []) + _ignore_file_patterns(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not _excluded(rel_dir + d, True, patterns))
        for name in sorted(filenames):
            rel = rel_dir + name
            if not _excluded(rel, False, patterns):
                yield rel, os.path.join(dirpath, name)


# ---------------------------------------------------------------------------- packing
def zip_directory(root: str, excludes: list[str] | None = None, include_parent_dir: bool = False) -> tuple[str, bytes]:
    """Zip ``root``; return its URI and bytes. Its contents sit at the archive's top level,
    or inside a folder named like ``root`` with ``include_parent_dir`` (py_modules)."""
    if not os.path.isdir(root):
        raise ValueError(f"{root!r} is not a directory.")
    prefix = os.path.basename(os.path.normpath(root)) + "/" if include_parent_dir else ""
    digest = hashlib.sha256()
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, path in iter_files(root, excludes):
            rel = prefix + rel
            with open(path, "rb") as f:
                data = f.read()
            total += len(data)
            if total > MAX_PACKAGE_BYTES:
                raise PackageTooLargeError(_too_large_message(root, total))
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(path).st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    data = buf.getvalue()
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageTooLargeError(_too_large_message(root, len(data)))
    return f"{GCS_PROTOCOL}://{PKG_PREFIX}{digest.hexdigest()[:16]}.zip", data


def read_zip_file(path: str) -> tuple[str, bytes]:
    """A user's own .zip as a package: its URI (hash of its bytes) and bytes."""
    size = os.path.getsize(path)
    if size > MAX_PACKAGE_BYTES:
        raise PackageTooLargeError(_too_large_message(path, size))
    with open(path, "rb") as f:
        data = f.read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"working_dir {path!r} is not a zip file.")
    return f"{GCS_PROTOCOL}://{PKG_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}.zip", data


def package_local_path(path: str, excludes: list[str] | None = None, include_parent_dir: bool = False) -> tuple[str, bytes]:
    """A local working_dir or py_module (folder or .zip file) as (URI, zip bytes)."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(path) and path.endswith(".zip"):
        return read_zip_file(path)
    if not os.path.exists(path):
        raise ValueError(f"{path!r} does not exist.")
    return zip_directory(path, excludes, include_parent_dir)


def _too_large_message(what: str, size: int) -> str:
    return (
        f"The package for {what!r} is {size / 2**20:.1f} MiB, over the limit of "
        f"{MAX_PACKAGE_BYTES / 2**20:.0f} MiB (SOLRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES). Leave large "
        "files out with runtime_env={'excludes': [...]} or a .gitignore/.rayignore, or use a "
        "remote URI."
    )


# ---------------------------------------------------------------------------- unpacking
def unpack(data: bytes, cache_dir: str, uri: str) -> str:
    """Unpack a package into ``cache_dir/<name>`` once; return that folder."""
    _, name = parse_uri(uri)
    target = os.path.join(cache_dir, name.removesuffix(".zip"))
    if os.path.isdir(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            root = os.path.realpath(tmp)
            for member in zf.infolist():
                dest = os.path.realpath(os.path.join(tmp, member.filename))
                if dest != root and not dest.startswith(root + os.sep):
                    raise ValueError(f"Package {uri} has an entry outside its folder: {member.filename!r}")
                zf.extract(member, tmp)
                mode = (member.external_attr >> 16) & 0o777
                if mode and not member.is_dir():
                    os.chmod(dest, mode)
        try:
            os.rename(tmp, target)
        except OSError:  # another process unpacked it first
            if not os.path.isdir(target):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------- the cluster side
def package_uris(runtime_env: dict | None) -> list[str]:
    """The package URIs a runtime_env names (its working_dir and py_modules)."""
    env = runtime_env or {}
    values = [env.get("working_dir")] + list(env.get("py_modules") or ())
    return [v for v in values if v and is_package_uri(v)]


def cache_dir(session_dir: str) -> str:
    """Where a node unpacks packages (shared by its daemon, job manager and entrypoints)."""
    return os.path.join(session_dir, "runtime_resources", "working_dir_files")


async def fetch_and_unpack(uri: str, kv_get, cache: str) -> str:
    """The folder of package ``uri`` on this node: fetched through ``kv_get(namespace, key)``
    from the cluster and unpacked into ``cache`` (once: an unpacked package is reused)."""
    import asyncio

    protocol, _ = parse_uri(uri)
    if protocol != GCS_PROTOCOL:
        raise ValueError(f"package URIs with protocol {protocol!r} are not supported: {uri} (upload the folder instead)")
    data = await kv_get(KV_NAMESPACE_PACKAGES, uri.encode())
    if data is None:
        raise ValueError(f"package {uri} was never uploaded to the cluster (PUT /api/packages/gcs/<name>)")
    return await asyncio.to_thread(unpack, data, cache, uri)


async def upload_local_folders(runtime_env: dict, kv_put) -> dict:
    """A driver's runtime_env with its local working_dir/py_modules replaced by package URIs.

    Each folder is zipped (off the IO loop) and stored once under its content hash through
    ``kv_put(namespace, key, value, overwrite)``, so every node can fetch it: a task on any
    node runs in the same files, as Ray's do.
    """
    import asyncio

    async def upload(path: str, include_parent_dir: bool) -> str:
        if is_package_uri(path):
            return path
        if not os.path.exists(path):
            raise ValueError(
                f"runtime_env: {path!r} is not a package URI nor a folder or .zip file on this "
                "machine (clients upload local folders before submitting)"
            )
        uri, data = await asyncio.to_thread(
            package_local_path, path, runtime_env.get("excludes"), include_parent_dir
        )
        await kv_put(KV_NAMESPACE_PACKAGES, uri.encode(), data, False)
        return uri

    env = dict(runtime_env)
    if env.get("working_dir"):
        env["working_dir"] = await upload(env["working_dir"], False)
    if env.get("py_modules"):
        env["py_modules"] = [await upload(m, True) for m in env["py_modules"]]
    return env
