"""working_dir and py_modules of single tasks and actors: uploaded once, unpacked per node,
inherited by the tasks they submit, and kept apart from tasks that did not ask for them."""

from __future__ import annotations

import os

import pytest

import solray as ray


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkgs")
    work = root / "work"
    work.mkdir()
    (work / "task_helper.py").write_text("VALUE = 'from the working dir'\n")
    (work / "note.txt").write_text("relative files resolve")
    lib = root / "extlib"
    lib.mkdir()
    (lib / "__init__.py").write_text("NAME = 'extlib'\n")
    ray.init(num_cpus=2)
    yield {"work": str(work), "lib": str(lib)}
    ray.shutdown()


@ray.remote
def uses_working_dir():
    import task_helper

    with open("note.txt") as f:
        return task_helper.VALUE, f.read(), os.getcwd()


@ray.remote
def can_import(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


@ray.remote
def parent_submits_child():
    return ray.get(uses_working_dir.remote())[0]


def test_a_task_runs_in_its_own_working_dir(folders):
    value, note, cwd = ray.get(uses_working_dir.options(runtime_env={"working_dir": folders["work"]}).remote())
    assert (value, note) == ("from the working dir", "relative files resolve")
    assert "working_dir_files" in cwd  # an unpacked copy, not the driver's folder
    # Workers that did not ask for it stay clean: a worker is reused only for its own env.
    assert ray.get(can_import.remote("task_helper")) is False


def test_py_modules_and_child_tasks_inherit(folders):
    env = {"working_dir": folders["work"], "py_modules": [folders["lib"]]}
    assert ray.get(can_import.options(runtime_env=env).remote("extlib")) is True
    assert ray.get(parent_submits_child.options(runtime_env=env).remote()) == "from the working dir"


def test_an_actor_runs_in_its_own_working_dir(folders):
    @ray.remote
    class Reader:
        def read(self):
            import task_helper

            return task_helper.VALUE

    actor = Reader.options(runtime_env={"working_dir": folders["work"]}).remote()
    assert ray.get(actor.read.remote()) == "from the working dir"
    ray.kill(actor)


def test_a_missing_folder_fails_at_submission(folders, tmp_path):
    with pytest.raises(ValueError, match="not a package URI nor a folder"):
        uses_working_dir.options(runtime_env={"working_dir": str(tmp_path / "gone")}).remote()


def test_unpacked_packages_go_with_the_node_and_logs_stay(folders):
    session = ray._private.api._cluster["info"]["session_dir"]
    ray.get(uses_working_dir.options(runtime_env={"working_dir": folders["work"]}).remote())
    cache = os.path.join(session, "runtime_resources")
    assert os.path.isdir(cache)
    ray.shutdown()
    try:
        assert not os.path.exists(cache)
        assert os.path.isdir(os.path.join(session, "logs"))
    finally:
        ray.init(num_cpus=2)  # the module's fixture shuts it down
