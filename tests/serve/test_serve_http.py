"""Serve over real HTTP: seed 002's online predictor, return types, FastAPI ingress,
streaming, and bad input answered with clear statuses."""


import glob
import io
import os
import socket

import numpy as np
import pandas as pd
import pytest
import requests
from helpers import Gate, arrive_and_wait, wait_for
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse

from solray import serve

URL = "http://localhost:8000"


def _taxi_frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "passenger_count": rng.integers(1, 5, n).astype(float),
        "trip_distance": rng.random(n) * 10,
        "fare_amount": rng.random(n) * 40,
        "trip_duration": rng.random(n) * 3600,
    })
    df["is_big_tip"] = (df["fare_amount"] * 0.1 + rng.random(n) > 2.5).astype(int)
    return df


@serve.deployment
class OnlinePredictor:
    def __init__(self, checkpoint):
        from solray.train.xgboost import XGBoostTrainer

        self.model = XGBoostTrainer.get_model(checkpoint)

    async def __call__(self, request: Request) -> dict:
        data = await request.json()
        data = pd.read_json(io.StringIO(data), orient="records") if isinstance(data, str) else pd.DataFrame(data)
        return {"predictions": self.predict(data.to_dict(orient="records"))}

    def predict(self, data: list[dict]) -> list[float]:
        import xgboost

        frame = pd.DataFrame(data)
        return self.model.predict(xgboost.DMatrix(frame)).tolist()


def test_seed_online_predictor_over_http(serve_instance, tmp_path):
    import xgboost

    from solray.train import Checkpoint

    df = _taxi_frame(200)
    features = df.drop(columns=["is_big_tip"])
    booster = xgboost.train({"objective": "binary:logistic", "nthread": 1},
                            xgboost.DMatrix(features, label=df["is_big_tip"]), num_boost_round=5)
    booster.save_model(str(tmp_path / "model.ubj"))
    checkpoint = Checkpoint.from_directory(str(tmp_path))

    handle = serve.run(OnlinePredictor.bind(checkpoint=checkpoint))
    sample = features.head(3)
    data = pd.DataFrame(sample).to_json(orient="records")
    got = requests.post(f"{URL}/", json=data).json()
    expected = booster.predict(xgboost.DMatrix(sample)).tolist()
    assert got["predictions"] == pytest.approx(expected, rel=1e-6)
    assert handle.predict.remote(sample.to_dict(orient="records")).result() == pytest.approx(expected, rel=1e-6)


def test_return_values_routes_and_builtin_endpoints(serve_instance):
    @serve.deployment(ray_actor_options={"num_cpus": 0})
    def text(request: Request) -> str:
        return f"hello {request.query_params.get('name', 'world')} at {request.url.path}"

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Many:
        async def __call__(self, request: Request):
            kind = request.path_params.get("kind") or request.query_params["kind"]
            if kind == "bytes":
                return b"\x00\x01raw"
            if kind == "response":
                return PlainTextResponse("teapot", status_code=418)
            return {"kind": kind, "n": [1, 2]}

    serve.run(text.bind(), name="text", route_prefix="/text")
    serve.run(Many.bind(), name="many", route_prefix="/many")
    r = requests.get(f"{URL}/text/sub?name=serve")
    assert r.status_code == 200 and r.text == "hello serve at /text/sub"
    assert r.headers["content-type"].startswith("text/plain")
    assert requests.get(f"{URL}/many?kind=json").json() == {"kind": "json", "n": [1, 2]}
    assert requests.get(f"{URL}/many?kind=bytes").content == b"\x00\x01raw"
    r = requests.get(f"{URL}/many?kind=response")
    assert (r.status_code, r.text) == (418, "teapot")
    assert requests.get(f"{URL}/-/routes").json() == {"/text": "text", "/many": "many"}
    assert requests.get(f"{URL}/-/healthz").text == "success"
    r = requests.get(f"{URL}/nowhere")
    assert r.status_code == 404 and "/nowhere" in r.text
    # The proxy writes one access log line per request.
    logs = glob.glob(os.path.join(_session_dir(), "logs", "serve", "proxy_*.log"))
    wait_for(lambda: any("GET /many 418" in open(p).read() for p in logs), what="an access log line")


def _session_dir() -> str:
    from solray._private.worker import state

    return state.get_core_worker().session_dir


def test_bad_input_gets_clear_statuses(serve_instance):
    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Strict:
        async def __call__(self, request: Request):
            body = await request.json()
            if body.get("boom"):
                raise ValueError("boom requested")
            return body

    serve.run(Strict.bind())
    r = requests.post(URL, data=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "Malformed JSON" in r.text
    r = requests.post(URL, json={"boom": True})
    assert r.status_code == 500 and "ValueError: boom requested" in r.text
    r = requests.post(URL, data=b"x" * (2 << 20))
    assert r.status_code == 413
    # A client that never finishes its body gets 408; the proxy carries on.
    with socket.create_connection(("127.0.0.1", 8000)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
        s.settimeout(30)
        assert s.recv(100).startswith(b"HTTP/1.1 408")
    # Garbage that is not HTTP at all gets 400 from the proxy's HTTP parser.
    with socket.create_connection(("127.0.0.1", 8000)) as s:
        s.sendall(b"\x00\x01 NOT HTTP\r\n\r\n")
        s.settimeout(30)
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert requests.post(URL, json={"ok": 1}).json() == {"ok": 1}


def test_fastapi_ingress_with_path_params_bodies_and_docs(serve_instance):
    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class Shop:
        def __init__(self, tax: float):
            self.tax = tax

        @app.get("/items/{item_id}")
        def get_item(self, item_id: int, q: str | None = None):
            return {"item_id": item_id, "q": q}

        @app.post("/items")
        async def add(self, item: Item):
            return {"name": item.name, "total": item.price * (1 + self.tax)}

    serve.run(Shop.bind(0.5), route_prefix="/shop")
    assert requests.get(f"{URL}/shop/items/7?q=x").json() == {"item_id": 7, "q": "x"}
    assert requests.post(f"{URL}/shop/items", json={"name": "pen", "price": 2}).json() == {"name": "pen", "total": 3.0}
    assert requests.get(f"{URL}/shop/items/notanint").status_code == 422
    assert requests.post(f"{URL}/shop/items", json={"name": "pen"}).status_code == 422
    spec = requests.get(f"{URL}/shop/openapi.json").json()
    assert "/items/{item_id}" in spec["paths"] and "self" not in str(spec["paths"]["/items/{item_id}"])
    docs = requests.get(f"{URL}/shop/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_streaming_over_http_and_handles(serve_instance):
    gate = Gate()
    address = gate.address

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Streamer:
        def __call__(self, request: Request):
            def chunks():
                yield "first\n"
                arrive_and_wait(address)
                for i in range(3):
                    yield f"line {i}\n"

            return StreamingResponse(chunks(), media_type="text/plain")

        async def numbers(self, n: int):
            for i in range(n):
                yield i * i

    handle = serve.run(Streamer.bind())
    with requests.get(URL, stream=True) as r:
        lines = r.iter_lines()
        assert next(lines) == b"first"  # arrives while the generator still waits at the gate
        gate.wait_arrivals(1)
        gate.release()
        assert list(lines) == [b"line 0", b"line 1", b"line 2"]
    assert list(handle.options(stream=True).numbers.remote(4)) == [0, 1, 4, 9]
