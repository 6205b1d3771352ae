"""Python handles: composition, batching, multiplexing, user_config, redeploys, lookups."""

import asyncio
import os
import threading

import pytest
import requests
from helpers import wait_for

from solray import serve
from solray.serve.exceptions import RayServeException

NO_CPU = {"num_cpus": 0}


def test_composition_passes_responses_without_waiting(serve_instance):
    @serve.deployment(ray_actor_options=NO_CPU)
    class Preprocess:
        def __call__(self, x: int) -> int:
            return x + 1

    @serve.deployment(ray_actor_options=NO_CPU)
    class Model:
        def __init__(self, weight: int):
            self.weight = weight

        async def __call__(self, x: int) -> int:
            return x * self.weight

        def describe(self) -> str:
            return f"model x{self.weight}"

    @serve.deployment(ray_actor_options=NO_CPU)
    class Ingress:
        def __init__(self, pre, model):
            self.pre = pre
            self.model = model

        async def __call__(self, request):
            return await self.run(int(request.query_params["x"]))

        async def run(self, x: int) -> dict:
            # The preprocessed value goes to the model without this replica waiting for it.
            value = await self.model.remote(self.pre.remote(x))
            return {"value": value, "model": await self.model.describe.remote(),
                    "handle": type(self.model).__name__}

    handle = serve.run(Ingress.bind(Preprocess.bind(), Model.bind(weight=10)))
    assert handle.run.remote(4).result() == {"value": 50, "model": "model x10", "handle": "DeploymentHandle"}
    assert requests.get("http://localhost:8000/?x=1").json()["value"] == 20
    model = serve.get_deployment_handle("Model", "default")
    assert serve.get_app_handle("default").run.remote(0).result()["value"] == 10
    # A response from one handle is an argument to another, from the driver too.
    pre_handle = serve.get_deployment_handle("Preprocess", "default")
    assert model.remote(pre_handle.remote(2)).result() == 30


def test_batching_groups_concurrent_calls(serve_instance):
    @serve.deployment(ray_actor_options=NO_CPU, max_ongoing_requests=16)
    class Batched:
        def __init__(self):
            self.sizes = []

        @serve.batch(max_batch_size=4, batch_wait_timeout_s=30)
        async def double(self, xs: list[int]) -> list[int]:
            self.sizes.append(len(xs))
            return [x * 2 for x in xs]

        async def __call__(self, x: int) -> int:
            return await self.double(x)

        def batch_sizes(self) -> list[int]:
            return self.sizes

    handle = serve.run(Batched.bind())
    responses = [handle.remote(i) for i in range(8)]
    assert [r.result() for r in responses] == [i * 2 for i in range(8)]
    assert handle.batch_sizes.remote().result() == [4, 4]


def test_batch_validates_arguments():
    with pytest.raises(ValueError, match="max_batch_size"):
        serve.batch(max_batch_size=0)
    with pytest.raises(TypeError, match="async"):
        serve.batch(lambda self, xs: xs)


def test_multiplexed_models_load_once_and_evict_lru(serve_instance):
    @serve.deployment(ray_actor_options=NO_CPU)
    class Models:
        def __init__(self):
            self.loads = []

        @serve.multiplexed(max_num_models_per_replica=2)
        async def get_model(self, model_id: str):
            self.loads.append(model_id)
            return f"model-{model_id}"

        async def __call__(self, request=None):
            model_id = serve.get_multiplexed_model_id()
            return {"model": await self.get_model(model_id), "id": model_id}

        def loaded(self) -> list[str]:
            return self.loads

    handle = serve.run(Models.bind())
    for model_id in ["a", "b", "a"]:
        assert handle.options(multiplexed_model_id=model_id).remote().result()["model"] == f"model-{model_id}"
    assert handle.loaded.remote().result() == ["a", "b"]
    handle.options(multiplexed_model_id="c").remote().result()  # evicts "b", the least recently used
    r = requests.get("http://localhost:8000/", headers={"serve_multiplexed_model_id": "b"})
    assert r.json() == {"model": "model-b", "id": "b"}
    assert handle.loaded.remote().result() == ["a", "b", "c", "b"]


def test_user_config_reconfigures_in_place_and_code_changes_roll(serve_instance):
    def make(tag: str):
        @serve.deployment(name="Configurable", ray_actor_options=NO_CPU, user_config={"threshold": 1},
                          graceful_shutdown_timeout_s=5)
        class Configurable:
            def __init__(self):
                self.threshold = None

            def reconfigure(self, config: dict):
                self.threshold = config["threshold"]

            async def __call__(self, request=None):
                return {"tag": tag, "threshold": self.threshold, "pid": os.getpid()}

        return Configurable

    v1 = make("v1")
    handle = serve.run(v1.bind())
    first = handle.remote().result()
    assert first["threshold"] == 1
    serve.run(v1.options(user_config={"threshold": 2}).bind())
    second = handle.remote().result()
    assert (second["threshold"], second["pid"]) == (2, first["pid"])  # same replica, reconfigured

    # New code: replicas roll while traffic keeps flowing; no request fails.
    failures, stop = [], threading.Event()

    def traffic():
        while not stop.is_set():
            r = requests.get("http://localhost:8000/")
            if r.status_code != 200:
                failures.append(r.text)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        serve.run(make("v2").bind())
        third = handle.remote().result()
    finally:
        stop.set()
        thread.join()
    assert third["tag"] == "v2" and third["pid"] != first["pid"]
    assert failures == []


def test_handle_errors_timeouts_and_lookups(serve_instance):
    @serve.deployment(ray_actor_options=NO_CPU, graceful_shutdown_timeout_s=0.5)
    class Tools:
        def fail(self):
            raise KeyError("missing thing")

        async def slow(self):
            await asyncio.sleep(30)

        def context(self) -> dict:
            ctx = serve.get_replica_context()
            return {"app": ctx.app_name, "deployment": ctx.deployment, "tag": ctx.replica_tag}

    handle = serve.run(Tools.bind(), name="tools", route_prefix=None)
    with pytest.raises(KeyError, match="missing thing"):
        handle.fail.remote().result()
    with pytest.raises(TimeoutError):
        handle.slow.remote().result(timeout_s=0.2)
    ctx = handle.context.remote().result()
    assert ctx["app"] == "tools" and ctx["deployment"] == "Tools" and ctx["tag"]
    with pytest.raises(RayServeException):
        serve.get_replica_context()
    with pytest.raises(RayServeException, match="nope"):
        serve.get_app_handle("nope")
    status = serve.status()
    assert status.applications["tools"].status == "RUNNING"
    assert status.applications["tools"].deployments["Tools"].replica_states == {"RUNNING": 1}
    serve.delete("tools")
    assert "tools" not in serve.status().applications
    wait_for(lambda: "tools" not in requests.get("http://localhost:8000/-/routes").json().values())


def test_deployment_options_are_validated():
    with pytest.raises(ValueError, match="max_ongoing_requests"):
        serve.deployment(max_ongoing_requests=0)
    with pytest.raises(ValueError, match="num_replicas"):
        serve.deployment(num_replicas=-1)
    with pytest.raises(ValueError, match="min_replicas"):
        serve.deployment(autoscaling_config={"min_replicas": 3, "max_replicas": 2})
    with pytest.raises(TypeError, match="Unknown"):
        serve.deployment(num_replica=2)
    with pytest.raises(TypeError, match="bind"):
        serve.run(serve.deployment(lambda: 1))

    @serve.deployment(num_replicas="auto")
    def auto():
        return 1

    assert auto.autoscaling_config.max_replicas == 100
    assert auto.options(num_replicas=3).num_replicas == 3


def test_failing_constructor_fails_the_deploy_with_its_cause(serve_instance):
    @serve.deployment(ray_actor_options=NO_CPU)
    class Broken:
        def __init__(self):
            raise ValueError("no model file")

    with pytest.raises(RuntimeError, match="no model file"):
        serve.run(Broken.bind(), name="broken", route_prefix="/broken")
    assert serve.status().applications["broken"].status == "DEPLOY_FAILED"
