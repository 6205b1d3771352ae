"""Autoscaling, replica failures (health checks, killed processes), backpressure, draining."""

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers import Gate, arrive_and_wait, wait_for

from solray import serve

NO_CPU = {"num_cpus": 0}
URL = "http://localhost:8000/"


def _held(address):
    """A deployment whose calls wait at the gate, then answer with the replica's pid."""

    @serve.deployment(ray_actor_options=NO_CPU, health_check_period_s=0.1, health_check_timeout_s=10,
                      graceful_shutdown_timeout_s=5)
    class Held:
        def __init__(self):
            self.healthy = True

        async def __call__(self, request=None):
            await asyncio.get_running_loop().run_in_executor(None, arrive_and_wait, address)
            return {"pid": os.getpid()}

        def pid(self) -> int:
            return os.getpid()

        def check_health(self):
            if not self.healthy:
                raise RuntimeError("replica marked unhealthy")

        def break_health(self):
            self.healthy = False

    return Held


def _pid(handle) -> int | None:
    try:
        return handle.pid.remote().result(timeout_s=5)
    except Exception:  # the old replica is gone and the new one not yet routed to
        return None


def test_autoscaling_follows_ongoing_requests_up_and_down(serve_instance):
    gate = Gate()
    held = _held(gate.address).options(
        max_ongoing_requests=1,
        autoscaling_config={"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 1,
                            "upscale_delay_s": 0, "downscale_delay_s": 0, "look_back_period_s": 0.2},
    )
    handle = serve.run(held.bind())

    def replicas():
        return serve.status().applications["default"].deployments["Held"].replica_states

    # One request runs, two wait in this process's router: together they are the load.
    responses = [handle.remote() for _ in range(3)]
    gate.wait_arrivals(3)  # only once two more replicas took the waiting requests
    assert replicas() == {"RUNNING": 3}
    gate.release()
    assert len({r.result()["pid"] for r in responses}) == 3
    wait_for(lambda: replicas() == {"RUNNING": 1}, what="scaling back down to 1 replica")


def test_unhealthy_replica_is_replaced_and_its_requests_fail_fast(serve_instance):
    gate = Gate()
    handle = serve.run(_held(gate.address).bind())
    first_pid = handle.pid.remote().result()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, URL, timeout=60)
        gate.wait_arrivals(1)
        handle.break_health.remote().result()
        r = in_flight.result()
    assert r.status_code == 500 and "failed its health check (RuntimeError: replica marked unhealthy)" in r.text
    wait_for(lambda: _pid(handle) not in (None, first_pid), what="a replacement replica")
    gate.release()
    assert requests.get(URL).status_code == 200


def test_killed_replica_is_replaced_and_its_requests_answer_500(serve_instance):
    gate = Gate()
    handle = serve.run(_held(gate.address).bind())
    first_pid = handle.pid.remote().result()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, URL, timeout=60)
        gate.wait_arrivals(1)
        os.kill(first_pid, signal.SIGKILL)
        r = in_flight.result()
    assert r.status_code == 500 and "died" in r.text
    wait_for(lambda: _pid(handle) not in (None, first_pid), what="a replacement replica")
    gate.release()
    assert requests.get(URL).json()["pid"] != first_pid


def test_full_queue_answers_503_and_queued_requests_complete(serve_instance):
    gate = Gate()
    handle = serve.run(_held(gate.address).options(max_ongoing_requests=1, max_queued_requests=1).bind())
    handle.pid.remote().result()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(requests.get, URL, timeout=60)
        gate.wait_arrivals(1)
        others = [pool.submit(requests.get, URL, timeout=60) for _ in range(2)]
        # One of the two waits in the proxy's queue; the other finds it full.
        wait_for(lambda: any(f.done() for f in others), what="a refused request")
        gate.release()
        statuses = sorted(f.result().status_code for f in [first, *others])
    assert statuses == [200, 200, 503]
    assert "max_queued_requests=1" in next(f.result().text for f in others if f.result().status_code == 503)


def test_delete_drains_in_flight_requests(serve_instance):
    gate = Gate()
    serve.run(_held(gate.address).bind())
    with ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(requests.get, URL, timeout=60)
        gate.wait_arrivals(1)
        deleting = pool.submit(serve.delete, "default")
        wait_for(lambda: serve.status().applications.get("default") is None
                 or serve.status().applications["default"].status == "DELETING", what="the app deleting")
        gate.release()
        assert in_flight.result().status_code == 200
        deleting.result()
    assert serve.status().applications == {}
    assert requests.get(URL).status_code == 404


def _proxy_pid() -> int | None:
    import solray
    from solray.serve._internal.constants import CONTROLLER_NAME, SERVE_NAMESPACE

    controller = solray.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    return solray.get(controller.get_status.remote())["proxy"].get("pid")


def test_killed_proxy_is_restarted(serve_instance):
    @serve.deployment(ray_actor_options=NO_CPU)
    def hello(request):
        return "hello"

    serve.run(hello.bind())
    old = _proxy_pid()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: _proxy_pid() not in (None, old), what="a new proxy")

    def answers():
        try:
            return requests.get(URL, timeout=5).text == "hello"
        except requests.ConnectionError:
            return False

    wait_for(answers, what="the new proxy serving the app")


def test_replica_keeps_max_ongoing_requests_across_callers(serve_instance):
    gate = Gate()
    handle = serve.run(_held(gate.address).options(max_ongoing_requests=1).bind())
    with ThreadPoolExecutor(1) as pool:
        over_http = pool.submit(requests.get, URL, timeout=60)
        gate.wait_arrivals(1)
        # The driver's router does not know of the proxy's request; the replica makes it wait.
        from_driver = handle.remote()
        with pytest.raises(TimeoutError):
            from_driver.result(timeout_s=0.5)
        gate.release()
        assert over_http.result().status_code == 200
    assert from_driver.result()["pid"] == handle.pid.remote().result()
