"""The `serve` CLI (build, deploy, status, shutdown, run) and the dashboard's Serve REST API,
against a real `solray start --head` cluster."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml
from dashboard_helpers import DashboardHead, free_port
from helpers import wait_for

APP = '''
from solray import serve

@serve.deployment(ray_actor_options={{"num_cpus": 0}}, user_config={{"greeting": "hello"}})
class Greeter:
    def reconfigure(self, config):
        self.greeting = config["greeting"]

    async def __call__(self, request):
        return f"{{self.greeting}} from {version}"

app = Greeter.bind()
'''


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = DashboardHead(tmp_path_factory.mktemp("serve-head"), connect=False)
    yield h
    h.stop()


def serve_cli(head, args, cwd, check=True):
    proc = subprocess.run([sys.executable, "-m", "solray.serve.scripts", *args], cwd=cwd, env=head.env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"serve {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def dashboard(head, method, body=None, token=True):
    headers = {"Authorization": f"Bearer {head.token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(head.url + "/api/serve/applications/", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_build_deploy_update_status_and_shutdown(head, tmp_path):
    (tmp_path / "greeter.py").write_text(APP.format(version="v1"))
    serve_cli(head, ["build", "greeter:app", "-o", "config.yaml"], tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    app = config["applications"][0]
    assert app["import_path"] == "greeter:app"
    assert app["deployments"][0] == {"name": "Greeter", "max_ongoing_requests": 5, "num_replicas": 1,
                                     "user_config": {"greeting": "hello"}, "ray_actor_options": {"num_cpus": 0}}
    port = free_port()
    config["http_options"]["port"] = port
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}/"

    serve_cli(head, ["deploy", "config.yaml"], tmp_path)
    wait_for(lambda: http_get(url) == (200, "hello from v1"), what="the deployed app", timeout=60)
    assert "RUNNING" in serve_cli(head, ["status"], tmp_path).stdout

    # The dashboard reports it (with the token only).
    assert dashboard(head, "GET", token=False)[0] == 401
    status, text = dashboard(head, "GET")
    assert status == 200
    assert json.loads(text)["applications"]["default"]["status"] == "RUNNING"

    # Changed code and config roll out without restarting the cluster.
    (tmp_path / "greeter.py").write_text(APP.format(version="v2"))
    serve_cli(head, ["deploy", "config.yaml"], tmp_path)
    wait_for(lambda: http_get(url) == (200, "hello from v2"), what="the new code", timeout=60)
    config["applications"][0]["deployments"][0]["user_config"] = {"greeting": "hi"}
    config["applications"][0]["deployments"][0]["num_replicas"] = 2
    # The dashboard imports the app from its working_dir.
    config["applications"][0]["runtime_env"] = {"working_dir": str(tmp_path)}
    status, text = dashboard(head, "PUT", config)
    assert status == 200, text
    wait_for(lambda: http_get(url) == (200, "hi from v2"), what="the new user_config", timeout=60)

    def replicas():
        apps = json.loads(dashboard(head, "GET")[1])["applications"]
        return apps["default"]["deployments"]["Greeter"]["replica_states"]

    wait_for(lambda: replicas() == {"RUNNING": 2}, what="two replicas", timeout=60)

    serve_cli(head, ["shutdown", "-y"], tmp_path)
    assert json.loads(dashboard(head, "GET")[1])["applications"] == {}
    assert http_get(url)[0] is None


def test_serve_run_blocks_until_interrupted(head, tmp_path):
    (tmp_path / "greeter.py").write_text(APP.format(version="run"))
    proc = subprocess.Popen([sys.executable, "-m", "solray.serve.scripts", "run", "greeter:app", "--address", "auto"],
                            cwd=tmp_path, env=head.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_get("http://127.0.0.1:8000/") == (200, "hello from run"), timeout=60,
                 what="serve run's app")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert http_get("http://127.0.0.1:8000/")[0] is None
