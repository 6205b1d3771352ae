"""The head keeps its token in the user's config folder (mode 0600, keyed by its address),
so the user's CLI, SDK and drivers find it from anywhere; SOLRAY_AUTH_TOKEN at
``solray start --head`` is the cluster's token."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from dashboard_helpers import clean_env, free_port, run_cli

pytest.importorskip("starlette", reason="the dashboard needs solray[default] (starlette, uvicorn)")

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("token-head")
    config = tmp / "config"
    env = clean_env(SOLRAY_TMPDIR=str(tmp / "head-tmp"), XDG_CONFIG_HOME=str(config), SOLRAY_AUTH_TOKEN=TOKEN)
    run_cli(["start", "--head", "--port", "0", "--dashboard-port", str(free_port()), "--num-cpus", "1"], env)
    with open(tmp / "head-tmp" / "current_cluster.json") as f:
        info = json.load(f)
    yield {"tmp": tmp, "config": config, "env": env, "info": info}
    run_cli(["stop"], env, check=False)


def test_token_is_stored_private_and_keyed_by_address(head):
    info = head["info"]
    assert info["token"] == TOKEN  # SOLRAY_AUTH_TOKEN is the cluster's token
    folder = head["config"] / "solray" / "clusters"
    files = list(folder.iterdir())
    assert len(files) == 1 and info["control_address"].rsplit(":", 1)[1] in files[0].name
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    stored = json.loads(files[0].read_text())
    assert stored == {"control_address": info["control_address"], "dashboard_url": info["dashboard_url"], "token": TOKEN}


def test_local_clients_pick_it_up_without_the_cluster_file(head, tmp_path):
    info = head["info"]
    # Another temp folder (no cluster files there), no token in the environment: only the
    # user's config folder knows the token.
    env = clean_env(SOLRAY_TMPDIR=str(tmp_path / "elsewhere"), XDG_CONFIG_HOME=str(head["config"]))
    assert "Active: 1" in run_cli(["status", "--address", info["control_address"]], env).stdout
    assert run_cli(["job", "list", "--address", info["dashboard_url"]], env).returncode == 0
    assert "gcs_server" in run_cli(["logs", "--address", info["dashboard_url"]], env).stdout
    driver = subprocess.run(
        [sys.executable, "-c", f"import solray as ray; ray.init(address={info['control_address']!r}); "
         "print(ray.get(ray.remote(lambda: 'driver-ok').remote()))"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert "driver-ok" in driver.stdout, driver.stderr[-2000:]
    from solray.job_submission import JobSubmissionClient

    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(head["config"])
    try:
        assert isinstance(JobSubmissionClient(info["dashboard_url"]).list_jobs(), list)  # the SDK too
    finally:
        os.environ["XDG_CONFIG_HOME"] = saved
    # Elsewhere (another user's config), there is no token to find.
    other = clean_env(SOLRAY_TMPDIR=str(tmp_path / "elsewhere"), XDG_CONFIG_HOME=str(tmp_path / "other-config"))
    refused = run_cli(["status", "--address", info["control_address"]], other, check=False)
    assert refused.returncode != 0 and "No token" in refused.stdout + refused.stderr


def test_stop_forgets_the_stored_token(tmp_path):
    config = tmp_path / "config"
    env = clean_env(SOLRAY_TMPDIR=str(tmp_path / "t"), XDG_CONFIG_HOME=str(config))
    run_cli(["start", "--head", "--port", "0", "--include-dashboard", "false", "--num-cpus", "1"], env)
    folder = config / "solray" / "clusters"
    assert len(list(folder.iterdir())) == 1
    run_cli(["stop"], env)
    assert list(folder.iterdir()) == []
