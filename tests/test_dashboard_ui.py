"""The dashboard's web UI in a real headless browser (Debian's ``chromium``).

Two ways in: ``chromium --dump-dom`` (the page as rendered, after its API calls) and the
Chrome DevTools protocol over a WebSocket, which types the token into the login prompt,
follows the tabs, waits for live updates and takes a screenshot. Both look for what this
module's workload created: the node, actors, tasks (one failing), a submitted job's logs.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
from dashboard_helpers import DashboardHead
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray

pytest.importorskip("starlette", reason="the dashboard needs solray[default] (starlette, uvicorn)")

CHROMIUM = os.environ.get("SOLRAY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.path.exists("/usr/bin/chromium"):
    CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium browser: install Debian's `chromium` package (`make test` does when it runs as root with apt)",
)
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-extensions", "--hide-scrollbars", "--window-size=1280,900"]


@ray.remote
def ui_square(x):
    return x * x


@ray.remote
def ui_fails():
    raise RuntimeError("ui-visible-error")


@ray.remote
def ui_held(address):
    arrive_and_wait(address)
    return "done"


@ray.remote
class UiWorker:
    def ping(self):
        return "pong"


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = DashboardHead(tmp_path_factory.mktemp("ui-head"))
    yield h
    h.stop()


@pytest.fixture(scope="module")
def workload(head):
    from solray.job_submission import JobStatus, JobSubmissionClient

    actors = [UiWorker.options(name=f"ui-actor-{i}").remote() for i in range(2)]
    ray.get([a.ping.remote() for a in actors] + [ui_square.remote(i) for i in range(3)])
    with pytest.raises(RuntimeError):
        ray.get(ui_fails.remote())
    client = JobSubmissionClient(head.url, headers={"Authorization": f"Bearer {head.token}"})
    sid = client.submit_job(entrypoint="python -c \"print('ui-job-output-line')\"")
    wait_for(lambda: client.get_job_status(sid) == JobStatus.SUCCEEDED, 60, "the submitted job to finish")
    return {"actors": actors, "submission_id": sid, "node_id": ray.get_runtime_context().get_node_id()}


def _dump_dom(url: str, profile) -> str:
    proc = subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=1500", "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@needs_chromium
def test_dump_dom_shows_nodes_actors_and_jobs(head, workload, tmp_path):
    overview = _dump_dom(f"{head.url}/#token={head.token}", tmp_path / "p1")
    assert 'data-loaded="overview"' in overview
    assert workload["node_id"][:16] in overview and "(head)" in overview
    actors = _dump_dom(f"{head.url}/#/actors?token={head.token}", tmp_path / "p2")
    assert "ui-actor-0" in actors and "ui-actor-1" in actors and "UiWorker" in actors
    jobs = _dump_dom(f"{head.url}/#/jobs/{workload['submission_id']}?token={head.token}", tmp_path / "p3")
    assert workload["submission_id"] in jobs and "SUCCEEDED" in jobs
    assert "ui-job-output-line" in jobs  # the deep link opened the job's logs
    # Without a token the page only asks for one: no cluster data reaches it.
    anonymous = _dump_dom(f"{head.url}/", tmp_path / "p4")
    assert 'id="login"' in anonymous and "ui-actor-0" not in anonymous and 'data-loaded' not in anonymous


# ------------------------------------------------------------------ DevTools protocol
class Browser:
    """A headless chromium driven over the DevTools protocol (one page)."""

    def __init__(self, profile):
        from websockets.sync.client import connect

        os.makedirs(profile, exist_ok=True)
        self.proc = subprocess.Popen(
            [CHROMIUM, *BROWSER_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = os.path.join(profile, "DevToolsActivePort")

        def port():
            try:
                with open(port_file) as f:
                    lines = f.read().split()
                return int(lines[0]) if len(lines) >= 2 else None
            except (OSError, ValueError):
                return None

        p = wait_for(port, 30, "chromium's DevTools port")

        def page_target():
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/json/list", timeout=5) as resp:
                return next((t for t in json.loads(resp.read()) if t["type"] == "page"), None)

        target = wait_for(page_target, 30, "chromium's page")
        self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30).__enter__()
        self._ids = itertools.count(1)

    def send(self, method: str, **params):
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression[:200]}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def wait(self, condition: str, timeout_s: float = 20, what: str = ""):
        """Resolve in the page once the JS expression ``condition`` is truthy (checked every 50 ms)."""
        js = f"""new Promise((resolve, reject) => {{
            const t0 = Date.now();
            (function check() {{
                let v; try {{ v = ({condition}); }} catch (e) {{ v = null; }}
                if (v) return resolve(v);
                if (Date.now() - t0 > {int(timeout_s * 1000)}) return reject(new Error("timed out: {what or 'condition'}"));
                setTimeout(check, 50);
            }})();
        }})"""
        return self.eval(js)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def text(self, element_id: str) -> str:
        return self.eval(f"document.getElementById({json.dumps(element_id)}).innerText")

    def screenshot(self, path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def browser(tmp_path):
    pytest.importorskip("websockets", reason="the DevTools client needs the websockets package (solray[default])")
    b = Browser(str(tmp_path / "profile"))
    yield b
    b.close()


@needs_chromium
def test_login_then_live_pages_and_a_screenshot(head, workload, browser, tmp_path):
    b = browser
    b.goto(head.url + "/")
    b.wait("!document.getElementById('login').classList.contains('hidden')", what="the login prompt")
    # A wrong token is refused and the prompt says so.
    b.eval("document.getElementById('token-input').value = 'not-the-token'; "
           "document.getElementById('login-button').click(); true")
    b.wait("document.getElementById('login-error').innerText.includes('refused')", what="the refusal")
    b.eval(f"document.getElementById('token-input').value = {json.dumps(head.token)}; "
           "document.getElementById('login-button').click(); true")
    b.wait("document.body.dataset.loaded === 'overview'", what="the overview")
    nodes = b.text("nodes-table")
    assert workload["node_id"][:16] in nodes and "ALIVE" in nodes
    assert "CPU USED" in b.text("cards").upper()
    shot = b.screenshot(tmp_path / "overview.png")
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000

    b.goto(head.url + "/#/actors")
    b.wait("document.body.dataset.loaded === 'actors' && document.getElementById('actors-table').innerText.includes('ui-actor-1')",
           what="the actors")
    assert "UiWorker" in b.text("actors-table")

    # Tasks: a running task shows RUNNING, then (polled, no reload) FINISHED.
    with Gate() as gate:
        ref = ui_held.remote(gate.address)
        gate.wait_arrivals(1)
        b.goto(head.url + "/#/tasks")
        b.wait("/ui_held\\s+NORMAL_TASK\\s+RUNNING/.test(document.getElementById('tasks-table').innerText)",
               what="the running task")
    assert ray.get(ref) == "done"
    b.wait("/ui_held\\s+NORMAL_TASK\\s+FINISHED/.test(document.getElementById('tasks-table').innerText)",
           timeout_s=15, what="the task's live update")
    tasks = b.text("tasks-table")
    assert "ui_fails" in tasks and "TASK_EXECUTION_EXCEPTION" in tasks and "ui-visible-error" in tasks
    b.screenshot(tmp_path / "tasks.png")

    # Jobs: the list, then a click opens the job's logs.
    sid = workload["submission_id"]
    b.goto(head.url + "/#/jobs")
    b.wait(f"document.getElementById('jobs-table').innerText.includes({json.dumps(sid)})", what="the job")
    b.eval(f"Array.from(document.querySelectorAll('#jobs-table tbody tr'))"
           f".find(tr => tr.innerText.includes({json.dumps(sid)})).click(); true")
    b.wait("document.getElementById('job-logs').innerText.includes('ui-job-output-line')", what="the job's logs")
    assert b.eval("location.hash") == f"#/jobs/{sid}"

    # Logs: the head's files by group; a click shows one file's tail.
    b.goto(head.url + "/#/logs")
    b.wait("document.body.dataset.loaded === 'logs' && document.getElementById('logs-files').innerText.includes('worker_out')",
           what="the log files")
    b.eval(f"Array.from(document.querySelectorAll('#logs-files a'))"
           f".find(a => a.innerText === {json.dumps('job-driver-' + sid + '.log')}).click(); true")
    b.wait("document.getElementById('log-content').innerText.includes('ui-job-output-line')", what="the log file")
    b.screenshot(tmp_path / "logs.png")

    b.goto(head.url + "/#/placement-groups")
    b.wait("document.body.dataset.loaded === 'placement-groups'", what="the placement groups page")
    # Signing out forgets the token.
    b.eval("document.getElementById('logout').click(); true")
    assert b.eval("localStorage.getItem('solray-dashboard-token')") is None
    started = time.monotonic()
    b.wait("!document.getElementById('login').classList.contains('hidden')", what="the login prompt again")
    assert time.monotonic() - started < 5


def test_page_is_served_without_the_token_but_apis_are_not(head):
    status, body, headers = head.get("/", token=None)
    assert status == 200 and b"<title>solray dashboard</title>" in body
    assert headers.get("x-frame-options") == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert head.get("/api/solray/overview", token=None)[0] == 401
    overview = head.get_json("/api/solray/overview")
    assert overview["nodes"][0]["alive"] and overview["resources_total"]["CPU"] == 2
