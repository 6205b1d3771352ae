"""Fuzzing the two surfaces strangers can reach (DESIGN §4, issue 4's access control).

* The RPC frame decoder (``protocol/frames.py`` + ``Connection.data_received``), with
  hypothesis: random bytes, random frames and random msgpack messages, fed in random
  chunks, before and after authentication. Nothing escapes ``data_received``, nothing is
  dispatched before authentication, every call returns promptly, and well-formed frames
  split anywhere decode exactly.
* The dashboard's REST API, with schemathesis against our OpenAPI spec
  (``solray/dashboard/openapi.json``) on a live head: no 5xx with the token, and every
  request without it is 401 and does nothing.

Each property runs a bounded number of examples with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import time

import msgpack
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from solray._private.protocol import frames  # noqa: E402
from solray._private.rpc.connection import Connection  # noqa: E402

TOKEN = "fuzz-token"
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
FUZZ_MESSAGES = settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------- the frame decoder
class FakeTransport:
    def __init__(self):
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name, default=None):
        return default

    def writelines(self, chunks):
        self.written.extend(bytes(c) for c in chunks)

    def write(self, data):
        self.written.append(bytes(data))

    def close(self):
        self.closed = True

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def is_closing(self):
        return self.closed


class Harness:
    """A server-side Connection on a fake transport; records what reaches its handler."""

    _loop: asyncio.AbstractEventLoop | None = None  # one for all examples: making loops is slow

    def __init__(self, authenticated: bool):
        logging.getLogger("solray._private.rpc.connection").setLevel(logging.CRITICAL)  # it warns per bad frame
        if Harness._loop is None or Harness._loop.is_closed():
            Harness._loop = asyncio.new_event_loop()
        self.loop = Harness._loop
        asyncio.set_event_loop(self.loop)
        self.calls: list = []

        def handler(conn, method, payload, tail):
            self.calls.append((method, payload, tail))
            return "ok"

        self.conn = Connection(handler, TOKEN, is_client=False, name="fuzz")
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)
        if authenticated:
            self.feed(b"".join(frames.encode_frame([frames.AUTH, TOKEN, None])))
            assert self.conn._authenticated

    def feed(self, data: bytes) -> None:
        started = time.monotonic()
        self.conn.data_received(data)  # must not raise
        assert time.monotonic() - started < 1.0, "data_received took too long"

    def close(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))  # flush scheduled writes
        for handle in list(getattr(self.loop, "_scheduled", [])):
            handle.cancel()  # delayed closes of refused strangers


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return out


def _frame(body: bytes, tail: bytes = b"") -> bytes:
    return frames.HEADER.pack(len(body), len(tail)) + body + tail


ints = st.integers(-(2**63), 2**64 - 1)
msgpack_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5) | ints, children, max_size=5),
    max_leaves=20,
)
# Messages shaped like ours (kind first) with anything after it.
messages = st.one_of(
    msgpack_values,
    st.tuples(st.integers(-2, 8), st.lists(msgpack_values, max_size=4)).map(lambda t: [t[0], *t[1]]),
)


@FUZZ
@given(data=st.binary(max_size=4096), cuts=st.lists(st.integers(0, 4096), max_size=8))
def test_random_bytes_before_auth_never_escape_or_dispatch(data, cuts):
    h = Harness(authenticated=False)
    try:
        for chunk in _chunks(data, cuts):
            h.feed(chunk)
            if h.conn.closed:
                break
        assert h.calls == []  # nothing reaches a handler before authentication
        assert len(h.conn._buf) <= frames.MAX_UNAUTHENTICATED_SIZE + frames.HEADER_SIZE
    finally:
        h.close()


@FUZZ_MESSAGES
@given(msgs=st.lists(messages, min_size=1, max_size=5), cuts=st.lists(st.integers(0, 4096), max_size=8))
def test_random_messages_before_auth_never_dispatch(msgs, cuts):
    h = Harness(authenticated=False)
    try:
        data = b"".join(_frame(msgpack.packb(m, use_bin_type=True)) for m in msgs)
        for chunk in _chunks(data, cuts):
            h.feed(chunk)
            if h.conn.closed:
                break
        assert h.calls == []
        # A stranger's first frame decides: it is not a good AUTH, so the connection closes,
        # or says AUTH_FAILED (and nothing else) before it hangs up.
        h.loop.run_until_complete(asyncio.sleep(0))
        said = [frames.unpack(w[frames.HEADER_SIZE:]) for w in h.transport.written]
        assert h.conn.closed or said == [[frames.AUTH_FAILED]]
    finally:
        h.close()


@FUZZ
@given(data=st.binary(max_size=4096), cuts=st.lists(st.integers(0, 4096), max_size=8))
def test_random_bytes_after_auth_never_escape(data, cuts):
    h = Harness(authenticated=True)
    try:
        for chunk in _chunks(data, cuts):
            h.feed(chunk)
            if h.conn.closed:
                break
    finally:
        h.close()


@FUZZ_MESSAGES
@given(msgs=st.lists(st.tuples(messages, st.binary(max_size=64)), min_size=1, max_size=6),
       cuts=st.lists(st.integers(0, 4096), max_size=8))
def test_random_messages_after_auth_never_escape(msgs, cuts):
    h = Harness(authenticated=True)
    try:
        data = b"".join(_frame(msgpack.packb(m, use_bin_type=True), tail) for m, tail in msgs)
        for chunk in _chunks(data, cuts):
            h.feed(chunk)
            if h.conn.closed:
                break
        h.loop.run_until_complete(asyncio.sleep(0))
    finally:
        h.close()


@FUZZ_MESSAGES
@given(calls=st.lists(st.tuples(st.text(max_size=10), msgpack_values, st.binary(max_size=100)), min_size=1, max_size=6),
       cuts=st.lists(st.integers(0, 4096), max_size=10))
def test_well_formed_frames_split_anywhere_decode_exactly(calls, cuts):
    h = Harness(authenticated=True)
    try:
        data = b"".join(
            b"".join(frames.encode_frame([frames.NOTIFY, method, payload], tail or None)) for method, payload, tail in calls
        )
        for chunk in _chunks(data, cuts):
            h.feed(chunk)
        expected = [(m, msgpack.unpackb(msgpack.packb(p, use_bin_type=True), raw=False, strict_map_key=False),
                     t or None) for m, p, t in calls]
        got = [(m, p, t) for m, p, t in h.calls]
        assert msgpack.packb(got, use_bin_type=True) == msgpack.packb(expected, use_bin_type=True)  # NaN-safe
    finally:
        h.close()


@settings(max_examples=50, deadline=2000)
@given(body_len=st.integers(0, 2**32 - 1), tail_len=st.integers(0, 2**32 - 1))
def test_oversized_headers_close_without_buffering(body_len, tail_len):
    for authenticated in (False, True):
        h = Harness(authenticated=authenticated)
        try:
            h.feed(struct.pack("!II", body_len, tail_len))
            limit = frames.MAX_UNAUTHENTICATED_SIZE if not authenticated else None
            too_big = (limit is not None and body_len + tail_len > limit) or body_len > frames.MAX_BODY_SIZE \
                or tail_len > frames.MAX_TAIL_SIZE
            if too_big:
                assert h.conn.closed  # refused on the header, before any body is buffered
            elif body_len + tail_len:
                assert not h.conn.closed  # waits for the rest
            assert h.calls == []
        finally:
            h.close()


# ---------------------------------------------------------------------------- the REST API
SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "solray", "dashboard", "openapi.json")


def test_openapi_spec_covers_every_http_route():
    """The spec describes the API the dashboard serves (and nothing it does not)."""
    pytest.importorskip("starlette")
    from starlette.routing import Route

    from solray.dashboard.server import build_app

    class _Control:  # the routes only keep a reference until a request comes
        address = "127.0.0.1:1"

        async def request(self, method, payload=None):
            raise ConnectionError("no cluster")

    class _Manager:
        control = _Control()
        token = "x"

    with open(SPEC) as f:
        spec = json.load(f)
    app = build_app(_Manager(), "session", "x").app
    served = set()
    for r in app.routes:
        if isinstance(r, Route):
            for m in r.methods - {"HEAD"}:
                served.add((r.path, m.lower()))
    described = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    ui_pages = {("/", "get"), ("/index.html", "get"), ("/favicon.ico", "get")}
    generic = {("/api/v0/{resource}/summarize", "get")}  # described per resource
    assert described - served - {(p, "get") for p in spec["paths"] if p.startswith("/api/v0/")} == set()
    assert served - described - ui_pages - generic == set()


schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    from dashboard_helpers import DashboardHead

    h = DashboardHead(tmp_path_factory.mktemp("fuzz-head"), num_cpus=1, connect=False)
    yield h
    h.stop()


# Each of these runs a `serve` CLI process on the head (seconds a call): tests/serve covers
# them with real configs; unauthenticated fuzzing still covers them (401, nothing runs).
HEAVY = {("/api/serve/applications/", "PUT"), ("/api/serve/applications/", "DELETE")}


def _operations(skip_heavy: bool = False):
    schema = schemathesis.openapi.from_path(SPEC)
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if not (skip_heavy and (op.path, op.method.upper()) in HEAVY)]


def _safe(case) -> None:
    """Authenticated fuzzing must not make the head run arbitrary shell commands or pip:
    job submissions run ``true``, with no packages or resources to wait for."""
    if case.operation.path == "/api/jobs/" and case.method.upper() == "POST" and isinstance(case.body, dict):
        case.body["entrypoint"] = "true"
        env = case.body.get("runtime_env")
        if isinstance(env, dict):
            for key in ("pip", "working_dir", "py_modules"):
                env.pop(key, None)
        for key in ("entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources"):
            case.body.pop(key, None)
    if case.operation.path == "/api/v0/logs/{media_type}":
        case.path_parameters["media_type"] = "file"  # "stream" follows a file until the client leaves


def _run_operations(head, check, examples: int, skip_heavy: bool = False) -> None:
    """``check(case, session)`` on ``examples`` cases of every operation: valid ones and
    ones that break the schema (wrong types, missing fields, junk values)."""
    import requests
    from hypothesis import reject

    session = requests.Session()
    for op in _operations(skip_heavy):
        cases = st.one_of(op.as_strategy(), op.as_strategy(schemathesis.GenerationMode.NEGATIVE))

        @settings(max_examples=examples, deadline=10_000, suppress_health_check=list(HealthCheck), database=None)
        @given(case=cases)
        def run(case):
            try:
                check(case, session)
            except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError):
                reject()  # not sendable over HTTP at all: nothing reached the server

        run()


def test_rest_api_has_no_server_errors(head):
    auth = {"Authorization": f"Bearer {head.token}"}

    def check(case, session):
        _safe(case)
        response = case.call(base_url=head.url, headers=auth, session=session, timeout=30)
        assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.status_code,
                                            response.text[:500])

    _run_operations(head, check, examples=20, skip_heavy=True)


def test_unauthenticated_requests_are_always_401(head):
    marker_dir = os.path.join(head.tmp, "fuzz-markers")

    def check(case, session):
        if case.operation.path == "/api/jobs/" and case.method.upper() == "POST" and isinstance(case.body, dict):
            case.body["entrypoint"] = f"mkdir -p {marker_dir}"  # would leave a trace if it ran
        if case.operation.path == "/metrics" and isinstance(case.query, dict):
            case.query.pop("token", None)
        if case.headers:
            case.headers.pop("Authorization", None)  # the spec's security scheme adds an empty one
        response = case.call(base_url=head.url, session=session, timeout=30)
        assert response.status_code == 401, (case.method, case.formatted_path, response.status_code)

    _run_operations(head, check, examples=10)
    assert not os.path.exists(marker_dir)  # no submission ran
    status, body, _ = head.get("/api/jobs/")
    assert status == 200 and all("fuzz-markers" not in (j.get("entrypoint") or "") for j in json.loads(body))
