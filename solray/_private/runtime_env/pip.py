"""runtime_env ``pip``: one virtualenv per distinct requirement set, built once per node.

A spec is a list of requirements, a requirements file, or Ray's dict form
``{"packages": [...], "pip_install_options": [...], "pip_check": bool, "pip_version": str}``.
Clients turn it into the dict form (reading a requirements file where it lives, on the
submitter's machine) so every node sees the same spec and the same hash.

The environment is ``python -m venv --system-site-packages`` plus a ``.pth`` file that
adds the site folders of the interpreter the cluster runs on: a venv made from inside
another venv would otherwise see the *system's* packages, not solray, numpy and the rest
installed next to it. Its own site-packages comes first on ``sys.path``, so what pip
installs there wins over the base versions. pip itself is the base environment's (reached
through that ``.pth``), so creating an env costs no ``ensurepip``.

Builds are serialized by an ``flock`` per environment: concurrent builders (the job
manager and node daemons sharing a cache folder, several workers of one node) wait for
the first and then find the finished environment, marked ready by a file written last.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import time
from typing import Any

READY_MARKER = ".solray_ready"
# How much of pip's output an error message quotes.
MAX_OUTPUT_CHARS = 10_000
INSTALL_TIMEOUT_S = float(os.environ.get("SOLRAY_RUNTIME_ENV_PIP_TIMEOUT_S", 900))


class PipEnvError(RuntimeError):
    """Creating the environment or installing into it failed; the message quotes pip."""


def normalize(spec: Any, base_dir: str | None = None) -> dict | None:
    """The canonical dict form of a ``pip`` field, or None for "no pip environment".

    A string is a requirements file (read now, relative to ``base_dir`` or the current
    folder); ``-r``/``--find-links`` style lines inside it stay as requirement lines,
    which pip understands.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"packages": spec}
    elif isinstance(spec, (list, tuple)):
        spec = {"packages": list(spec)}
    elif not isinstance(spec, dict):
        raise TypeError(f"runtime_env['pip'] must be a list of requirements, a requirements file or a dict, got {type(spec).__name__}.")
    unknown = set(spec) - {"packages", "pip_install_options", "pip_check", "pip_version"}
    if unknown:
        raise ValueError(f"runtime_env['pip'] has unknown field(s) {sorted(unknown)}.")
    packages = spec.get("packages")
    if isinstance(packages, str):
        packages = _read_requirements(packages, base_dir)
    if not isinstance(packages, (list, tuple)) or not all(isinstance(p, str) for p in packages):
        raise TypeError("runtime_env['pip']['packages'] must be a list of strings or a requirements file path.")
    packages = [p.strip() for p in packages if p.strip() and not p.strip().startswith("#")]
    options = spec.get("pip_install_options") or []
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise TypeError("runtime_env['pip']['pip_install_options'] must be a list of strings.")
    if not packages:
        return None
    out: dict[str, Any] = {"packages": packages, "pip_install_options": list(options)}
    if spec.get("pip_check"):
        out["pip_check"] = True
    if spec.get("pip_version"):
        out["pip_version"] = str(spec["pip_version"])
    return out


def _read_requirements(path: str, base_dir: str | None) -> list[str]:
    full = os.path.join(base_dir or os.getcwd(), os.path.expanduser(path))
    try:
        with open(full) as f:
            return f.read().splitlines()
    except OSError as e:
        raise ValueError(f"runtime_env['pip'] names the requirements file {path!r}, which cannot be read: {e}") from e


def normalize_runtime_env(runtime_env: dict | None, base_dir: str | None = None) -> dict | None:
    """``runtime_env`` with its ``pip`` field in canonical form (dropped when empty)."""
    if not runtime_env or "pip" not in runtime_env:
        return runtime_env
    out = dict(runtime_env)
    pip = normalize(out.pop("pip"), base_dir)
    if pip is not None:
        out["pip"] = pip
    return out


def env_hash(spec: dict) -> str:
    """Names the environment: the sorted requirements and the install options."""
    key = {
        "packages": sorted(spec["packages"]),
        "options": list(spec.get("pip_install_options") or []),
        "check": bool(spec.get("pip_check")),
        "version": spec.get("pip_version"),
        "python": list(sys.version_info[:2]),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(session_dir: str) -> str:
    """Where a node keeps its pip environments: ``SOLRAY_RUNTIME_ENV_PIP_CACHE_DIR`` when
    set (shared by every session on the machine), else under the session."""
    return os.environ.get("SOLRAY_RUNTIME_ENV_PIP_CACHE_DIR") or os.path.join(session_dir, "runtime_resources", "pip")


def python_of(env_dir: str) -> str:
    return os.path.join(env_dir, "bin", "python")


def activate(env: dict, env_dir: str) -> dict:
    """``env`` (a process environment) with the virtualenv first on PATH."""
    env = dict(env)
    env["VIRTUAL_ENV"] = env_dir
    env["PATH"] = os.pathsep.join(p for p in (os.path.join(env_dir, "bin"), env.get("PATH")) if p)
    env.pop("PYTHONHOME", None)
    return env


def ensure(spec: dict, root: str, log_path: str | None = None) -> str:
    """The folder of the environment for ``spec`` under ``root``, building it if needed.

    Blocking (runs pip); call it from a thread in async code. Raises PipEnvError with
    pip's output when the build fails; a failed build leaves nothing behind, so the next
    attempt starts over.
    """
    h = env_hash(spec)
    env_dir = os.path.join(root, h)
    if os.path.exists(os.path.join(env_dir, READY_MARKER)):
        return env_dir
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, h + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builders wait here for the first
        if os.path.exists(os.path.join(env_dir, READY_MARKER)):
            return env_dir
        shutil.rmtree(env_dir, ignore_errors=True)  # a build that died half way
        started = time.monotonic()
        try:
            output = _build(spec, env_dir)
        except PipEnvError as e:
            shutil.rmtree(env_dir, ignore_errors=True)
            _log(log_path, f"pip environment {h} for {spec['packages']} FAILED:\n{e}\n")
            raise
        with open(os.path.join(env_dir, READY_MARKER), "w") as f:
            json.dump(spec, f)
        _log(log_path, f"pip environment {h} for {spec['packages']} built in {time.monotonic() - started:.1f}s\n{output}\n")
        return env_dir


def _log(path: str | None, text: str) -> None:
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            f.write(text)
    except OSError:
        pass


def _base_site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if os.path.isdir(d)]


def _run(cmd: list[str], what: str, env: dict | None = None) -> str:
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=INSTALL_TIMEOUT_S, env=env,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        raise PipEnvError(f"{what} timed out after {INSTALL_TIMEOUT_S:.0f}s.\n{_tail(out)}") from None
    except OSError as e:
        raise PipEnvError(f"{what} could not run: {e}") from None
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise PipEnvError(f"{what} failed with exit code {proc.returncode}:\n{_tail(out)}")
    return out


def _tail(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT_CHARS else "...\n" + text[-MAX_OUTPUT_CHARS:]


def _build(spec: dict, env_dir: str) -> str:
    base_has_pip = importlib.util.find_spec("pip") is not None
    cmd = [sys.executable, "-m", "venv", "--system-site-packages"]
    if base_has_pip:
        cmd.append("--without-pip")
    _run([*cmd, env_dir], "Creating the virtualenv")
    python = python_of(env_dir)
    site_dir = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], "Inspecting the virtualenv").strip()
    # The base environment's site folders (and the .pth files in them: editable installs),
    # after the venv's own.
    lines = [f"import site; site.addsitedir({d!r})" for d in _base_site_dirs()]
    with open(os.path.join(site_dir, "_solray_base_env.pth"), "w") as f:
        f.write("\n".join(lines) + "\n")
    env = activate({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, env_dir)
    env["PIP_NO_INPUT"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    out = ""
    if spec.get("pip_version"):
        out += _run([python, "-m", "pip", "install", *spec.get("pip_install_options", []), "pip" + spec["pip_version"]],
                    "Installing the requested pip version", env)
    out += _run(
        [python, "-m", "pip", "install", *spec.get("pip_install_options", []), *spec["packages"]],
        f"pip install {' '.join(spec['packages'])}", env,
    )
    if spec.get("pip_check"):
        out += _run([python, "-m", "pip", "check", "--disable-pip-version-check"], "pip check", env)
    return out
