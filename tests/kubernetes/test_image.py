"""The container image's Dockerfile says what the operator and the charts rely on (no Docker
daemon runs on the test machines, so this reads the file instead of building it)."""

from __future__ import annotations

import shlex

from helm_tools import REPO

from solray.kubernetes._internal.common import PORTS

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_image_is_slim_non_root_with_solray_and_ray_on_path():
    steps = instructions()
    bases = [rest for word, rest in steps if word == "FROM"]
    assert all(b.startswith("python:${PYTHON_VERSION}-slim") for b in bases)
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    assert ("USER", "1000") in final  # the last stage runs as non-root
    run = " ".join(rest for word, rest in final if word == "RUN")
    assert 'ln -s "$(command -v solray)" /usr/local/bin/ray' in run
    assert "useradd --create-home --uid 1000" in run
    exposed = {int(p) for word, rest in final if word == "EXPOSE" for p in rest.split()}
    assert exposed == set(PORTS.values())
    assert shlex.split(dict(final)["CMD"].strip("[]").replace(",", " ")) == ["solray", "--help"]
    # What the wheel build copies exists, and the build context keeps to it.
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            for src in rest.split()[:-1]:
                assert (REPO / src).exists(), src
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text()
    assert "!solray/**" in ignore and "!pyproject.toml" in ignore
