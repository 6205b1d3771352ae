"""A tiny pure-Python wheel, written by hand (no build backend, no network), for tests of
runtime_env ``pip``: ``pip install --no-index --find-links <dir> <name>`` installs it."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile


def build_wheel(directory: str, name: str = "solray_tinypkg", version: str = "1.0", body: str = "VALUE = 42\n") -> str:
    """Write ``<name>-<version>-py3-none-any.whl`` (module ``name`` with ``body``) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": body,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: solray-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            data = text.encode()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{rel},sha256={digest},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def pip_spec(wheel_dir: str, *packages: str) -> dict:
    """A runtime_env ``pip`` field that installs from ``wheel_dir`` only (no index)."""
    return {
        "packages": list(packages or ["solray_tinypkg"]),
        "pip_install_options": ["--no-index", "--find-links", wheel_dir],
    }
