"""A driver killed mid-run: Tuner.restore finishes only the trials that had not finished."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import Gate, arrive_and_wait, wait_for  # noqa: E402  (tests/ is on sys.path)
from pyarrow.fs import LocalFileSystem

from solray import tune
from solray.tune import RunConfig, TuneConfig, Tuner
from solray.tune._internal.experiment_state import ExperimentFolder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def marked(config):
    """Leaves a marker per run; trials 2 and up wait at the gate (the driver dies there)."""
    open(os.path.join(config["dir"], f"run-{config['i']}-{os.getpid()}-{len(os.listdir(config['dir']))}"),
         "w").close()
    if config["i"] >= 2:
        arrive_and_wait(config["gate"])
    tune.report({"score": config["i"]})


DRIVER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}, {tests!r} + "/tune"]
    import solray
    from solray import tune
    from test_restore import marked
    solray.init(num_cpus=2)
    tune.Tuner(marked, param_space={{"i": tune.grid_search(list(range(6))), "dir": {dir!r}, "gate": {gate!r}}},
               tune_config=tune.TuneConfig(metric="score", mode="max"),
               run_config=tune.RunConfig(name="exp", storage_path={storage!r}, verbose=0)).fit()
""")


def runs(marks, i):
    return len(glob.glob(os.path.join(marks, f"run-{i}-*")))


def test_restore_after_the_driver_is_killed(ray_2_cpus, tmp_path):
    marks, storage = tmp_path / "marks", str(tmp_path / "results")
    marks.mkdir()
    with Gate() as gate:
        script = DRIVER.format(repo=REPO, tests=os.path.join(REPO, "tests"), dir=str(marks),
                               gate=list(gate.address), storage=storage)
        driver = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            try:
                gate.wait_arrivals(2, timeout=60)  # trials 0 and 1 are done, 2 and 3 run
            except AssertionError:
                os.kill(driver.pid, signal.SIGKILL)
                raise AssertionError(
                    f"the driver did not get going: {driver.communicate()[1].decode()[-3000:]}") from None
            path = os.path.join(storage, "exp")
            assert Tuner.can_restore(path)
            folder = ExperimentFolder(LocalFileSystem(), path)
            wait_for(lambda: [t["status"] for t in folder.read_state()["trials"][:2]] == ["TERMINATED"] * 2,
                     timeout=30, what="the saved state to record trials 0 and 1 as finished")
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(30)
        finally:
            if driver.poll() is None:
                os.kill(driver.pid, signal.SIGKILL)
            try:
                os.killpg(driver.pid, signal.SIGKILL)  # the cluster that driver started
            except ProcessLookupError:
                pass
    # the gate is released: restored trials pass straight through
    assert [runs(marks, i) for i in range(6)] == [1, 1, 1, 1, 0, 0]
    grid = Tuner.restore(path, trainable=marked).fit()
    assert len(grid) == 6 and grid.num_terminated == 6 and grid.num_errors == 0
    assert sorted(r.metrics["score"] for r in grid) == list(range(6))
    # finished trials did not run again; interrupted ones ran again; the rest ran once
    assert [runs(marks, i) for i in range(6)] == [1, 1, 2, 2, 1, 1]
    assert grid.get_best_result().config["i"] == 5


def fail_first(config):
    if config["i"] == 1 and not os.path.exists(os.path.join(config["dir"], "fixed")):
        raise RuntimeError("not fixed yet")
    tune.report({"score": config["i"]})


@pytest.mark.parametrize("flag", ["resume_errored", "restart_errored", None])
def test_restore_errored_trials(ray_2_cpus, tmp_path, flag):
    config = {"i": tune.grid_search([0, 1]), "dir": str(tmp_path)}
    grid = Tuner(fail_first, param_space=config, tune_config=TuneConfig(metric="score", mode="max"),
                 run_config=RunConfig(name="err", storage_path=str(tmp_path), verbose=0)).fit()
    assert grid.num_errors == 1
    open(tmp_path / "fixed", "w").close()
    kwargs = {flag: True} if flag else {}
    grid = Tuner.restore(str(tmp_path / "err"), trainable=fail_first, **kwargs).fit()
    assert grid.num_errors == (0 if flag else 1) and len(grid) == 2
    with pytest.raises(ValueError, match="no experiment to restore"):
        Tuner.restore(str(tmp_path / "nothing"), trainable=fail_first)
