"""runtime_env ``pip``: a virtualenv per distinct spec, built once per node, that still sees
the base packages; its workers run that venv's interpreter; a failed build surfaces as
``RuntimeEnvSetupError`` with pip's output. Installs a wheel the test writes (no network)."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from wheel_helpers import build_wheel, pip_spec

import solray
from solray._private.runtime_env import pip as pip_env
from solray.exceptions import ActorDiedError, RuntimeEnvSetupError


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("wheels"))
    build_wheel(d, "solray_tinypkg", "1.0", "VALUE = 42\n")
    build_wheel(d, "solray_otherpkg", "2.0", "NAME = 'other'\n")
    return d


@pytest.fixture(scope="module")
def cluster():
    ctx = solray.init(num_cpus=2)
    yield ctx
    solray.shutdown()


def test_normalize_forms_and_hash(tmp_path, wheels):
    req = tmp_path / "requirements.txt"
    req.write_text("# a comment\nsolray_tinypkg\n\nsolray_otherpkg==2.0\n")
    from_file = pip_env.normalize(str(req))
    assert from_file == {"packages": ["solray_tinypkg", "solray_otherpkg==2.0"], "pip_install_options": []}
    assert pip_env.normalize(["a", "b"]) == {"packages": ["a", "b"], "pip_install_options": []}
    assert pip_env.normalize([]) is None
    # The hash names the sorted requirement set and the options.
    assert pip_env.env_hash(pip_env.normalize(["a", "b"])) == pip_env.env_hash(pip_env.normalize(["b", "a"]))
    assert pip_env.env_hash(pip_spec(wheels)) != pip_env.env_hash(pip_env.normalize(["solray_tinypkg"]))
    with pytest.raises(ValueError, match="cannot be read"):
        pip_env.normalize(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="unknown field"):
        pip_env.normalize({"packages": ["a"], "bogus": 1})


def test_concurrent_builders_build_once(tmp_path, wheels):
    spec = pip_env.normalize(pip_spec(wheels))
    log = str(tmp_path / "setup.log")
    results, errors = [], []

    def build():
        try:
            results.append(pip_env.ensure(spec, str(tmp_path / "envs"), log))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(set(results)) == 1
    with open(log) as f:
        assert f.read().count("built in") == 1  # the others waited on the lock, then reused it
    import subprocess

    out = subprocess.run(
        [pip_env.python_of(results[0]), "-c", "import solray_tinypkg, solray, msgpack; print(solray_tinypkg.VALUE)"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.stdout.strip() == "42", out.stderr  # its package and the base ones


def test_tasks_and_actors_run_in_their_env(cluster, wheels):
    spec = pip_spec(wheels)

    @solray.remote(runtime_env={"pip": spec})
    def in_env():
        import solray_tinypkg

        return solray_tinypkg.VALUE, sys.prefix

    @solray.remote
    def plain():
        try:
            import solray_tinypkg  # noqa: F401
        except ImportError:
            return "absent"
        return "visible"

    value, prefix = solray.get(in_env.remote(), timeout=120)
    assert value == 42 and prefix.startswith(pip_env.cache_root(cluster["session_dir"]))
    assert solray.get(plain.remote()) == "absent"  # other tasks do not see the env's packages

    @solray.remote(runtime_env={"pip": spec, "env_vars": {"X": "1"}})
    class InEnv:
        def value(self):
            import solray_tinypkg

            return solray_tinypkg.VALUE, os.environ["X"], sys.prefix

        def child(self):
            return solray.get(in_env_child.remote())  # children inherit the env

    @solray.remote
    def in_env_child():
        return sys.prefix

    a = InEnv.remote()
    value, x, actor_prefix = solray.get(a.value.remote(), timeout=120)
    assert (value, x, actor_prefix) == (42, "1", prefix)  # same spec, same (cached) venv
    assert solray.get(a.child.remote(), timeout=120) == prefix


def test_failed_setup_raises_runtime_env_setup_error(cluster, wheels):
    bad = pip_spec(wheels, "no_such_package_xyz")

    @solray.remote(runtime_env={"pip": bad})
    def f():
        return 1

    with pytest.raises(RuntimeEnvSetupError) as info:
        solray.get(f.remote(), timeout=120)
    assert "no_such_package_xyz" in str(info.value)
    assert "No matching distribution" in str(info.value)  # pip's own output

    @solray.remote(runtime_env={"pip": bad})
    class A:
        def ping(self):
            return 1

    with pytest.raises(RuntimeEnvSetupError) as info:
        solray.get(A.remote().ping.remote(), timeout=120)
    assert isinstance(info.value, ActorDiedError)  # what Ray's calls raise, too
    assert "No matching distribution" in str(info.value)

    @solray.remote
    def ok():
        return "ok"

    assert solray.get(ok.remote()) == "ok"  # the cluster is fine
