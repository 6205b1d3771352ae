"""User metrics (``solray.util.metrics``) and the dashboard's Prometheus ``/metrics``:
Ray's validation rules, aggregation over processes, the text format, built-in cluster
metrics and token auth (header or ``?token=``)."""

from __future__ import annotations

import pickle
import re

import pytest
from dashboard_helpers import DashboardHead
from helpers import wait_for

import solray as ray
from solray._private.control.metrics_table import MetricsTable
from solray.util.metrics import Counter, Gauge, Histogram

pytest.importorskip("starlette", reason="the dashboard needs solray[default] (starlette, uvicorn)")


# ------------------------------------------------------------------ the API (no cluster)
def test_metric_arguments_are_validated_as_rays():
    with pytest.raises(ValueError, match="Empty name"):
        Counter("")
    with pytest.warns(UserWarning, match="Invalid metric name"):
        Counter("1bad-name")
    with pytest.raises(TypeError, match="tuple"):
        Counter("c_list_keys", tag_keys=["a"])
    with pytest.raises(TypeError, match="Tag keys must be str"):
        Gauge("g_int_key", tag_keys=(1,))
    c = Counter("c_valid", description="d", tag_keys=("a", "b"))
    with pytest.raises(ValueError, match="Missing value for tag key"):
        c.inc(1, tags={"a": "x"})
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        c.set_default_tags({"z": "1"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        c.set_default_tags({"a": 1})
    assert c.set_default_tags({"a": "1", "b": "2"}) is c
    c.inc()  # the default tags complete it
    with pytest.raises(ValueError, match=">0"):
        c.inc(0)
    with pytest.raises(TypeError, match="int or float"):
        c.inc("1")
    assert c.info == {"name": "c_valid", "description": "d", "tag_keys": ("a", "b"), "default_tags": {"a": "1", "b": "2"}}
    with pytest.raises(ValueError, match="boundaries"):
        Histogram("h_none")
    with pytest.raises(ValueError, match="positive"):
        Histogram("h_neg", boundaries=[1, -2])
    h = Histogram("h_ok", boundaries=[5, 1])
    assert h.info["boundaries"] == [1.0, 5.0]
    Gauge("g_none").set(None)  # a no-op, as Ray's
    clone = pickle.loads(pickle.dumps(h))
    assert isinstance(clone, Histogram) and clone.boundaries == [1.0, 5.0]


def test_metrics_table_adds_counters_and_histograms_and_keeps_the_last_gauge():
    t = MetricsTable()
    defs = {"reqs": ["counter", "requests", None], "temp": ["gauge", "", None], "lat": ["histogram", "", [1.0, 10.0]]}
    t.apply({"defs": defs, "points": [["reqs", [["r", "/"]], 2.0], ["temp", [], 5.0], ["lat", [], [[1, 0, 0], 0.5, 1]]]})
    t.apply({"defs": defs, "points": [["reqs", [["r", "/"]], 3.0], ["temp", [], 7.0], ["lat", [], [[0, 1, 1], 25.0, 2]]]})
    # A conflicting definition is ignored, and points of unknown metrics are dropped.
    t.apply({"defs": {"reqs": ["gauge", "", None]}, "points": [["nope", [], 1.0]]})
    series = {s["name"]: s for s in t.series()}
    assert series["reqs"]["type"] == "counter" and series["reqs"]["samples"] == [[[["r", "/"]], 5.0]]
    assert series["temp"]["samples"] == [[[], 7.0]]
    assert series["lat"]["samples"] == [[[], [[1, 1, 1], 25.5, 3]]]


def test_prometheus_text_format():
    from solray.dashboard.modules.metrics.prometheus import render

    metrics = {
        "user": [
            {"name": "reqs", "type": "counter", "description": "Requests", "boundaries": None,
             "samples": [[[["route", 'a"b']], 5.0]]},
            {"name": "lat", "type": "histogram", "description": "", "boundaries": [1.0, 10.0],
             "samples": [[[], [[1, 1, 1], 25.5, 3]]]},
        ],
        "cluster": {
            "nodes": [{"node_id": "n1", "node_ip": "1.2.3.4", "alive": True, "total": {"CPU": 4.0, "node:1.2.3.4": 1.0},
                       "available": {"CPU": 1.0}, "object_store_memory": 100, "object_store_used": 40,
                       "spilled_bytes": 0, "num_workers": 3, "mem_total": 1000, "mem_used": 300, "cpu_percent": 12.5}],
            "tasks": {"RUNNING": 2}, "actors": {"ALIVE": 1}, "placement_groups": {},
        },
    }
    text = render(metrics, {"SUCCEEDED": 2})
    assert "# TYPE ray_reqs_total counter\n" in text
    assert 'ray_reqs_total{route="a\\"b"} 5\n' in text
    assert 'ray_lat_bucket{le="1"} 1\nray_lat_bucket{le="10"} 2\nray_lat_bucket{le="+Inf"} 3\n' in text
    assert "ray_lat_sum 25.5\nray_lat_count 3\n" in text
    assert 'ray_resources{Name="CPU",NodeAddress="1.2.3.4",NodeId="n1",State="USED"} 3\n' in text
    assert "node:" not in text.split("ray_resources", 1)[1].split("# HELP", 1)[0]
    assert "ray_cluster_active_nodes 1\n" in text and 'ray_tasks{State="RUNNING"} 2\n' in text
    assert 'ray_jobs{Status="SUCCEEDED"} 2\n' in text
    assert 'ray_object_store_available_memory{NodeAddress="1.2.3.4",NodeId="n1"} 60\n' in text
    for line in text.splitlines():  # every sample line: name{labels} number
        assert line.startswith("#") or re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eInfNa]+$", line), line


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = DashboardHead(tmp_path_factory.mktemp("metrics-head"))
    yield h
    h.stop()


def _scrape(head) -> str:
    status, body, headers = head.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    return body.decode()


@ray.remote
def count_in_task(n):
    Counter("test_task_counter", tag_keys=("where",)).inc(n, tags={"where": "task"})
    Histogram("test_latency_s", boundaries=[0.1, 1.0]).observe(0.5)
    return n


@ray.remote
class Reporter:
    def __init__(self):
        self.gauge = Gauge("test_actor_gauge", description="set by an actor", tag_keys=("actor",))

    def set(self, v):
        self.gauge.set(v, tags={"actor": "r1"})
        return v


def test_user_metrics_from_every_process_reach_metrics(head):
    Counter("test_task_counter", tag_keys=("where",)).inc(2, tags={"where": "driver"})
    assert ray.get([count_in_task.remote(i) for i in (1, 2, 3)]) == [1, 2, 3]
    r = Reporter.remote()
    ray.get(r.set.remote(41))
    ray.get(r.set.remote(42))

    def scraped():
        text = _scrape(head)
        wanted = (
            'ray_test_task_counter_total{where="task"} 6\n',
            'ray_test_task_counter_total{where="driver"} 2\n',
            'ray_test_actor_gauge{actor="r1"} 42\n',
            "ray_test_latency_s_count 3\n",
        )
        return text if all(w in text for w in wanted) else None

    text = wait_for(scraped, 15, "the user metrics in /metrics")
    assert "# HELP ray_test_actor_gauge set by an actor\n" in text
    assert 'ray_test_latency_s_bucket{le="1"} 3\n' in text


def test_builtin_cluster_metrics(head):
    ray.get(count_in_task.remote(1))
    # The driver reports its tasks' states within ~100 ms.
    def counted():
        text = _scrape(head)
        return text if re.search(r'ray_tasks\{State="FINISHED"\} [1-9]', text) else None

    text = wait_for(counted, 10, "the finished task counted")
    assert "ray_cluster_active_nodes 1\n" in text
    assert re.search(r'ray_resources\{Name="CPU",NodeAddress="127.0.0.1",NodeId="\w+",State="AVAILABLE"\} ', text)
    assert re.search(r'ray_node_cpu_count\{NodeAddress="127.0.0.1",NodeId="\w+"\} 2\n', text)
    assert re.search(r'ray_object_store_memory\{.*Location="MMAP_SHM"\} \d+\n', text)
    assert re.search(r'ray_node_mem_total\{.*\} \d+\n', text)
    assert 'ray_jobs{Status="RUNNING"} 1\n' in text  # this driver
    r = Reporter.remote()
    ray.get(r.set.remote(1))
    assert re.search(r'ray_actors\{State="ALIVE"\} [1-9]', _scrape(head))


def test_metrics_endpoint_requires_the_token_in_a_header_or_query(head):
    assert head.get("/metrics", token=None)[0] == 401
    assert head.get("/metrics", token="wrong")[0] == 403
    assert head.get(f"/metrics?token={head.token}", token=None)[0] == 200
    assert head.get("/metrics?token=wrong", token=None)[0] == 403
    # The query parameter opens /metrics only, not the other APIs.
    assert head.get(f"/api/v0/actors?token={head.token}", token=None)[0] == 401
