"""The state API (``solray.util.state``): the driver-side functions, the dashboard's
``/api/v0/*`` routes (ours and Ray's own client), the ``solray list``/``summary`` CLI, and
the sans-IO pieces under them (task table, row queries).

One head with a dashboard serves the module; this process is its driver.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from dashboard_helpers import DashboardHead, run_cli
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray._private.control.task_table import TaskTable
from solray.util import state
from solray.util.state import rows as state_rows
from solray.util.state.common import StateResource

pytest.importorskip("starlette", reason="the dashboard needs solray[default] (starlette, uvicorn)")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = DashboardHead(tmp_path_factory.mktemp("state-head"))
    yield h
    h.stop()


@ray.remote
def square(x):
    return x * x


@ray.remote
def boom():
    raise ValueError("state-api-boom")


@ray.remote
def parent():
    return ray.get(square.remote(3))


@ray.remote
def held(address):
    arrive_and_wait(address)
    return "released"


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


# ------------------------------------------------------------------ actors
def test_list_actors_with_filters_detail_and_get(head):
    alive = Counter.options(name="state-alive").remote()
    dead = Counter.options(name="state-dead").remote()
    ray.get([alive.incr.remote(), dead.incr.remote()])
    ray.kill(dead)
    dead_id = dead._actor_id.hex()
    wait_for(lambda: (a := state.get_actor(dead_id)) is not None and a.state == "DEAD", 10, "the killed actor DEAD")

    alive_rows = state.list_actors(filters=[("state", "=", "ALIVE")])
    ids = {a.actor_id for a in alive_rows}
    assert alive._actor_id.hex() in ids and dead_id not in ids
    row = next(a for a in alive_rows if a.actor_id == alive._actor_id.hex())
    assert (row.class_name, row.name, row["state"]) == ("Counter", "state-alive", "ALIVE")
    assert row.job_id == ray.get_runtime_context().get_job_id()
    assert row.node_id == ray.get_runtime_context().get_node_id() and row.pid > 0
    assert row.num_restarts is None  # a detail column, filled only with detail=True
    # String filters ignore case (as Ray's); "!=" excludes.
    assert {a.actor_id for a in state.list_actors(filters=[("state", "=", "alive")])} == ids
    assert dead_id in {a.actor_id for a in state.list_actors(filters=[("state", "!=", "ALIVE")])}

    detailed = state.get_actor(dead_id)
    assert detailed.state == "DEAD" and detailed.num_restarts == 0 and detailed.is_detached is False
    assert "killed" in detailed.death_cause["actor_died_error_context"]["error_message"]
    assert state.get_actor("00" * 16) is None
    assert len(state.list_actors(limit=1)) == 1
    with pytest.raises(ValueError, match="not supported"):
        state.list_actors(filters=[("no_such_column", "=", "x")])
    with pytest.raises(ValueError, match="predicate"):
        state.list_actors(filters=[("state", ">", "x")])


# ------------------------------------------------------------------ tasks
def test_list_tasks_reports_finished_and_failed_tasks_with_their_errors(head):
    refs = [square.remote(i) for i in range(4)]
    assert ray.get(refs) == [0, 1, 4, 9]
    with pytest.raises(ValueError):
        ray.get(boom.remote())
    # The driver sends its pending task events before asking: no waiting needed.
    tasks = state.list_tasks(filters=[("name", "=", "square")], limit=1000)
    assert len(tasks) >= 4 and all(t.state == "FINISHED" for t in tasks)
    t = tasks[0]
    assert t.type == "NORMAL_TASK" and t.func_or_class_name == "square" and t.worker_pid > 0
    assert t.node_id == ray.get_runtime_context().get_node_id() and t.job_id == ray.get_runtime_context().get_job_id()

    failed = state.list_tasks(filters=[("name", "=", "boom")], detail=True)
    assert len(failed) == 1
    f = failed[0]
    assert (f.state, f.error_type) == ("FAILED", "TASK_EXECUTION_EXCEPTION")
    assert "state-api-boom" in f.error_message
    assert f.start_time_ms <= f.end_time_ms and f.creation_time_ms <= f.start_time_ms
    assert [e["state"] for e in f.events] == ["PENDING_ARGS_AVAIL", "RUNNING", "FAILED"]
    got = state.get_task(f.task_id)
    assert got.task_id == f.task_id and got.error_type == "TASK_EXECUTION_EXCEPTION"


def test_running_task_and_nested_task_parentage(head):
    with Gate() as gate:
        ref = held.remote(gate.address)
        gate.wait_arrivals(1)
        running = state.list_tasks(filters=[("name", "=", "held"), ("state", "=", "RUNNING")])
        assert len(running) == 1 and running[0].worker_pid > 0
    assert ray.get(ref) == "released"
    assert state.list_tasks(filters=[("name", "=", "held")])[0].state == "FINISHED"

    assert ray.get(parent.remote()) == 9
    p = state.list_tasks(filters=[("name", "=", "parent")])[0]
    # The child is owned (and reported) by the parent's worker: it arrives within ~100 ms.
    child = wait_for(
        lambda: [t for t in state.list_tasks(filters=[("parent_task_id", "=", p.task_id)]) if t.state == "FINISHED"],
        10, "the nested task's events",
    )
    assert child[0].name == "square"


def test_actor_tasks_and_creation_tasks(head):
    c = Counter.remote()
    assert ray.get([c.incr.remote() for _ in range(3)]) == [1, 2, 3]
    aid = c._actor_id.hex()
    calls = state.list_tasks(filters=[("actor_id", "=", aid)], limit=100)
    by_type = {}
    for t in calls:
        by_type.setdefault(t.type, []).append(t)
    assert len(by_type["ACTOR_TASK"]) == 3 and all(t.name == "Counter.incr" for t in by_type["ACTOR_TASK"])
    assert all(t.state == "FINISHED" and t.worker_pid and t.node_id for t in by_type["ACTOR_TASK"])
    assert [t.name for t in by_type["ACTOR_CREATION_TASK"]] == ["Counter.__init__"]


def test_summaries(head):
    ray.get([square.remote(i) for i in range(3)])
    tasks = state.summarize_tasks()["cluster"]
    entry = tasks["summary"]["square"]
    assert entry["type"] == "NORMAL_TASK" and entry["state_counts"]["FINISHED"] >= 3
    assert tasks["total_tasks"] >= 3 and tasks["summary_by"] == "func_name"
    actors = state.summarize_actors()["cluster"]
    assert actors["summary"]["Counter"]["state_counts"].get("ALIVE", 0) >= 1
    assert actors["total_actors"] == sum(sum(v["state_counts"].values()) for v in actors["summary"].values())


# ------------------------------------------------------------------ nodes, workers, objects, jobs, pgs
def test_nodes_workers_objects_jobs_and_placement_groups(head):
    nodes = state.list_nodes()
    assert [(n.state, n.is_head_node) for n in nodes] == [("ALIVE", True)]
    assert nodes[0].resources_total["CPU"] == 2 and state.get_node(nodes[0].node_id).start_time_ms > 0

    workers = state.list_workers()
    drivers = [w for w in workers if w.worker_type == "DRIVER"]
    assert os.getpid() in {w.pid for w in drivers}
    assert all(w.is_alive for w in workers)

    big = ray.put(b"x" * 300_000)
    objects = state.list_objects(filters=[("object_id", "=", big.hex())])
    assert len(objects) == 1
    o = objects[0]
    assert o.object_size >= 300_000 and o.pid == os.getpid() and o.type == "DRIVER"
    assert (o.reference_type, o.task_status) == ("LOCAL_REFERENCE", "FINISHED")
    summary = state.summarize_objects()["cluster"]
    assert summary["total_objects"] >= 1 and summary["total_size_mb"] > 0.28

    jobs = state.list_jobs()
    mine = [j for j in jobs if j.job_id == ray.get_runtime_context().get_job_id()]
    assert len(mine) == 1 and mine[0]["status"] == "RUNNING" and mine[0]["type"] == "DRIVER"
    assert state.get_job(mine[0].job_id).job_id == mine[0].job_id

    pg = ray.util.placement_group([{"CPU": 1}], name="state-pg")
    ray.get(pg.ready())
    pgs = state.list_placement_groups(filters=[("name", "=", "state-pg")], detail=True)
    assert len(pgs) == 1 and pgs[0].state == "CREATED"
    assert pgs[0].bundles[0]["unit_resources"] == {"CPU": 1.0}
    ray.util.remove_placement_group(pg)
    wait_for(lambda: state.get_placement_group(pg.id.hex()).state == "REMOVED", 10, "the group REMOVED")


# ------------------------------------------------------------------ HTTP
def test_dashboard_http_api_needs_the_token_and_matches_the_driver_api(head):
    c = Counter.options(name="state-http").remote()
    ray.get(c.incr.remote())
    assert head.get("/api/v0/actors", token=None)[0] == 401
    assert head.get("/api/v0/actors", token="wrong")[0] == 403

    answer = head.get_json("/api/v0/actors?filter_keys=name&filter_predicates=%3D&filter_values=state-http&detail=true")
    assert answer["result"] is True
    listing = answer["data"]["result"]
    assert listing["num_filtered"] == 1 and listing["result"][0]["class_name"] == "Counter"
    assert listing["result"][0]["required_resources"] == {}  # detail columns present

    over_http = state.list_actors(address=head.url, filters=[("name", "=", "state-http")])
    assert [a.actor_id for a in over_http] == [c._actor_id.hex()]
    assert state.summarize_tasks(address=head.url)["cluster"]["summary_by"] == "func_name"
    # A new connection to the control service ("auto" resolves to this head) agrees too.
    assert [a.actor_id for a in state.list_actors(address="auto", filters=[("name", "=", "state-http")])] == [
        c._actor_id.hex()
    ]

    # An unfiltered task listing fetches only the newest `limit` tasks, yet counts them all.
    ray.get([square.remote(i) for i in range(3)])
    every = wait_for(  # the driver's task events reach the head within ~100 ms
        lambda: (r := head.get_json("/api/v0/tasks?limit=10000")["data"]["result"])["num_filtered"] >= 5 and r,
        10, "the tasks at the head",
    )
    few = head.get_json("/api/v0/tasks?limit=2")["data"]["result"]
    # Events of earlier calls may still arrive between the two requests: counts only grow.
    assert len(few["result"]) == 2 and few["num_filtered"] == few["num_after_truncation"]
    assert few["num_filtered"] >= len(every["result"]) > 2
    assert few["total"] >= every["total"]

    status, body, _ = head.get("/api/v0/actors?filter_keys=bogus&filter_predicates=%3D&filter_values=1")
    assert status == 400 and json.loads(body)["result"] is False
    timeline = head.get_json("/api/v0/tasks/timeline")
    assert any(e["ph"] == "X" and e["name"] == "Counter.incr" for e in timeline)


def test_cli_list_and_summary(head):
    c = Counter.remote()
    ray.get([c.incr.remote(), square.remote(5), square.remote(6)])
    out = run_cli(["list", "actors", "--filter", "state=ALIVE", "--format", "json"], head.env).stdout
    assert any(a["class_name"] == "Counter" and a["state"] == "ALIVE" for a in json.loads(out))
    table = run_cli(["list", "tasks", "--filter", "name=square", "--limit", "2"], head.env).stdout
    assert "======== List: 2 tasks ========" in table and "FINISHED" in table and "TASK_ID" in table
    summary = run_cli(["summary", "tasks", "--address", head.url], head.env).stdout
    assert "square" in summary and "NORMAL_TASK" in summary
    big = ray.put(b"m" * 150_000)
    memory = run_cli(["memory", "--units", "KB"], head.env).stdout
    assert big.hex() in memory and "LOCAL_REFERENCE" in memory and "--- summary:" in memory
    bad = run_cli(["list", "actors", "--filter", "state~x"], head.env, check=False)
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_rays_own_state_client_reads_our_dashboard(head, tmp_path):
    c = Counter.remote()
    ray.get([c.incr.remote(), square.remote(2)])
    venv = os.environ.get("SOLRAY_RAY_VENV") or os.path.join(os.path.dirname(os.path.dirname(__file__)), ".venv-ray")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        pytest.skip(f"no Ray venv at {venv} (tests/test_jobs.py creates it)")
    script = tmp_path / "ray_state.py"
    script.write_text(
        "import sys\n"
        "from ray.util.state.api import StateApiClient\n"
        "from ray.util.state.common import ListApiOptions, StateResource, SummaryApiOptions, SummaryResource\n"
        "c = StateApiClient(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]})\n"
        "for r in (StateResource.ACTORS, StateResource.TASKS, StateResource.NODES, StateResource.JOBS,\n"
        "          StateResource.WORKERS, StateResource.PLACEMENT_GROUPS, StateResource.OBJECTS):\n"
        "    for detail in (False, True):\n"
        "        rows = c.list(r, options=ListApiOptions(detail=detail), raise_on_missing_output=False)\n"
        "        print(r.value, detail, len(rows))\n"
        "alive = c.list(StateResource.ACTORS, options=ListApiOptions(filters=[('state', '=', 'ALIVE')]),\n"
        "               raise_on_missing_output=True)\n"
        "print('alive', sorted({a.class_name for a in alive}))\n"
        "print('summary', sorted(c.summary(SummaryResource.TASKS, options=SummaryApiOptions(),\n"
        "      raise_on_missing_output=True)['cluster']['summary']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLRAY_", "RAY_"))}
    proc = subprocess.run([py, str(script), head.url, head.token], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "alive ['Counter']" in proc.stdout
    assert "'square'" in proc.stdout
    assert "nodes True 1" in proc.stdout


# ------------------------------------------------------------------ sans-IO pieces
def _ev(tid: bytes, state_name: str, t: float, attempt: int = 0, **extra):
    return [tid, attempt, state_name, t, extra or None]


def test_task_table_is_bounded_and_orders_states():
    table = TaskTable(max_tasks=3)
    for i in range(5):
        table.apply([_ev(bytes([i]), "PENDING_ARGS_AVAIL", 1.0, name=f"t{i}", job=1)])
    assert [r["name"] for r in table.records()] == ["t2", "t3", "t4"]
    assert table.stats() == {"total": 5, "stored": 3, "dropped": 2}
    t = bytes([4])
    table.apply([_ev(t, "RUNNING", 2.0, node="n", worker="w", pid=7), _ev(t, "FAILED", 3.0, error_type="WORKER_DIED")])
    table.apply([_ev(t, "RUNNING", 4.0, attempt=1)])  # a retry starts over
    rec = table.get(t)
    assert (rec["state"], rec["attempt"], rec.get("error_type"), rec.get("end_time")) == ("RUNNING", 1, None, None)
    table.apply([_ev(t, "PENDING_ARGS_AVAIL", 4.5, attempt=1)])  # late and older: no step back
    assert table.get(t)["state"] == "RUNNING"
    table.on_job_finished(1)
    assert table.counts_by_state() == {"FAILED": 3}
    assert table.get(t)["error_type"] == "WORKER_DIED"


def test_row_query_filters_limits_and_columns():
    rows = [
        {"actor_id": "a1", "class_name": "A", "state": "ALIVE", "pid": 10, "is_detached": False, "name": ""},
        {"actor_id": "a2", "class_name": "B", "state": "DEAD", "pid": 11, "is_detached": True, "name": "x"},
    ]
    q = state_rows.apply_query
    res = q(StateResource.ACTORS, rows, filters=[("pid", "=", "11")])
    assert [r["actor_id"] for r in res["result"]] == ["a2"]
    assert "is_detached" not in res["result"][0]  # detail-only column
    res = q(StateResource.ACTORS, rows, filters=[("class_name", "!=", "a")], detail=True)
    assert [r["actor_id"] for r in res["result"]] == ["a2"] and res["result"][0]["is_detached"] is True
    res = q(StateResource.ACTORS, rows, limit=1)
    assert (res["total"], res["num_filtered"], len(res["result"])) == (2, 2, 1)
    with pytest.raises(ValueError):
        q(StateResource.ACTORS, rows, filters=[("pid", "<", "1")])
    summary = state_rows.summarize_tasks(
        [{"name": "f", "type": "NORMAL_TASK", "state": "FINISHED"}, {"name": "f", "type": "NORMAL_TASK", "state": "FAILED"},
         {"name": "A.m", "type": "ACTOR_TASK", "state": "RUNNING"}]
    )
    assert summary["summary"]["f"]["state_counts"] == {"FINISHED": 1, "FAILED": 1}
    assert (summary["total_tasks"], summary["total_actor_tasks"]) == (2, 1)
