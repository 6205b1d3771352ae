"""``list_logs`` and ``get_log`` (Ray's ``ray.util.state`` log functions).

With an ``http(s)://`` address they ask the dashboard's ``/api/v0/logs`` API (Ray's
client does the same); otherwise they talk to the cluster directly: its control service
says which node holds a log and that node's daemon serves the file. Without an address,
a driver asks its own cluster, any other process ``RAY_ADDRESS``/``SOLRAY_ADDRESS`` or
the cluster started on this machine.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

from solray.util.state.common import DEFAULT_RPC_TIMEOUT, RayStateApiException
from solray.util.state.log_source import ANSI_ESCAPE, DEFAULT_LOG_LINES, LogNotFound, LogSource


def _is_http(address: str | None) -> bool:
    return bool(address) and address.startswith(("http://", "https://"))


def _control(address: str | None) -> tuple[str, str]:
    """(control address, token) of the cluster meant by ``address``."""
    from solray._private import cluster_files
    from solray._private.worker import state as worker_state

    worker = worker_state.get_core_worker(required=False)
    if address is None and worker is not None:
        return worker.control_address, worker.token
    address = address or os.environ.get("SOLRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or "auto"
    info = cluster_files.resolve(address)
    return info["control_address"], info["token"]


class _Direct:
    """Log queries straight to the cluster's control service and node daemons."""

    def __init__(self, address: str | None, timeout: float):
        from solray._private.worker import state as worker_state

        worker = worker_state.get_core_worker(required=False)
        # A driver asks over its own connection, after sending its pending task events: a
        # task it just ran is then known with its node and worker.
        self.worker = worker if address is None and worker is not None else None
        self.control_address, self.token = _control(address)
        self.timeout = timeout

    def _iterate_on_driver(self, make) -> Iterator:
        worker = self.worker
        end = object()

        async def setup():
            worker.task_events.flush()
            source = LogSource(lambda m, p: worker.control.request(m, p), worker.token)
            return source, make(source)

        async def step():
            return await anext(agen, end)

        source, agen = worker.run_sync(setup(), self.timeout)
        try:
            while True:
                item = worker.run_sync(step())
                if item is end:
                    return
                yield item
        finally:
            async def close():
                await agen.aclose()
                source.close()

            worker.run_sync(close(), self.timeout)

    def iterate(self, make) -> Iterator:
        from solray._private.control.client import ControlClient

        if self.worker is not None:
            yield from self._iterate_on_driver(make)
            return

        items: queue.Queue = queue.Queue(maxsize=64)
        stop = threading.Event()
        done = object()

        async def run():
            client = ControlClient(self.control_address, self.token, timeout=self.timeout)
            source = LogSource(client.request, self.token)
            try:
                async for item in make(source):
                    while True:  # a bounded queue: a slow reader slows the reading
                        if stop.is_set():
                            return
                        try:
                            items.put_nowait(item)
                            break
                        except queue.Full:
                            await asyncio.sleep(0.01)
                    if stop.is_set():
                        return
            finally:
                source.close()
                client.close()

        def main():
            try:
                asyncio.run(run())
                items.put(done)
            except BaseException as e:  # handed to the reader
                items.put(e)

        t = threading.Thread(target=main, name="solray-logs", daemon=True)
        t.start()
        try:
            while True:
                item = items.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def call(self, make):
        async def one(source):
            yield await make(source)

        return next(iter(self.iterate(one)))


def _errors(e: BaseException) -> BaseException:
    if isinstance(e, LogNotFound):
        return RayStateApiException(str(e))
    return e


# ---------------------------------------------------------------------------- HTTP
def _http_headers(url: str) -> dict:
    from solray.job_submission.sdk import _local_token_for

    token = (
        os.environ.get("SOLRAY_TOKEN") or os.environ.get("SOLRAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN")
        or _local_token_for(url)
    )
    return {"Authorization": f"Bearer {token}"} if token else {}


def _http_open(url: str, path: str, params: dict, timeout: float):
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    req = urllib.request.Request(f"{url}{path}?{query}", headers=_http_headers(url))
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        if e.code in (401, 403):
            from solray.exceptions import AuthenticationError

            raise AuthenticationError(f"The dashboard at {url} refused the request ({e.code}): {text}") from None
        raise RayStateApiException(f"{e.code}: {text}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(f"Failed to connect to the dashboard at {url}: {e}") from e


# ---------------------------------------------------------------------------- the API
def list_logs(
    address: str | None = None,
    node_id: str | None = None,
    node_ip: str | None = None,
    glob_filter: str | None = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
) -> dict[str, list[str]]:
    """The log files of a node (the head's by default): ``{group: [file name, ...]}``."""
    if _is_http(address):
        import json

        with _http_open(address.rstrip("/"), "/api/v0/logs",
                        {"node_id": node_id, "node_ip": node_ip, "glob": glob_filter or "*", "timeout": timeout},
                        timeout) as resp:
            answer = json.loads(resp.read())
        if answer.get("result") is False:
            raise RayStateApiException(answer.get("msg"))
        return answer["data"]["result"]
    try:
        return _Direct(address, timeout).call(lambda s: s.list_logs(node_id, node_ip, glob_filter))
    except LogNotFound as e:
        raise _errors(e) from None


def get_log(
    address: str | None = None,
    node_id: str | None = None,
    node_ip: str | None = None,
    filename: str | None = None,
    actor_id: str | None = None,
    task_id: str | None = None,
    pid: int | None = None,
    follow: bool = False,
    tail: int = -1,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    suffix: str = "out",
    encoding: str | None = "utf-8",
    errors: str | None = "strict",
    submission_id: str | None = None,
    attempt_number: int = 0,
    _interval: float | None = None,
    filter_ansi_code: bool = False,
) -> Iterator:
    """Yield a log's text in chunks: by ``filename`` (on ``node_id``/``node_ip``, the head
    by default), or the log of an ``actor_id``, ``task_id``, worker ``pid`` or job
    ``submission_id``. ``tail``: the last N lines (-1: all); ``follow``: keep yielding what
    is appended until the caller stops. ``encoding=None`` yields bytes."""
    del suffix, attempt_number  # a worker's log holds both streams; tasks share it
    if _is_http(address):
        params = {
            "node_id": node_id, "node_ip": node_ip, "filename": filename, "actor_id": actor_id,
            "task_id": task_id, "pid": pid, "submission_id": submission_id, "lines": tail,
            "interval": _interval, "filter_ansi_code": "true" if filter_ansi_code else None,
        }
        resp = _http_open(address.rstrip("/"), f"/api/v0/logs/{'stream' if follow else 'file'}", params,
                          None if follow else timeout)
        chunks = _http_chunks(resp)
    else:
        lines = DEFAULT_LOG_LINES if tail is None else tail

        async def make(source):
            node, name, span = await source.resolve(
                node_id=node_id, node_ip=node_ip, filename=filename, actor_id=actor_id, task_id=task_id,
                pid=pid, submission_id=submission_id,
            )
            async for chunk in source.stream(node, name, lines, follow=follow, interval=_interval, span=span):
                yield chunk

        chunks = _Direct(address, timeout).iterate(make)
    decoder = codecs.getincrementaldecoder(encoding)(errors or "strict") if encoding else None
    try:
        for chunk in chunks:
            if filter_ansi_code and not _is_http(address):
                chunk = ANSI_ESCAPE.sub(b"", chunk)
            if decoder is None:
                yield chunk
            else:
                text = decoder.decode(chunk)
                if text:
                    yield text
        if decoder is not None:
            text = decoder.decode(b"", final=True)
            if text:
                yield text
    except LogNotFound as e:
        raise _errors(e) from None
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _http_chunks(resp) -> Iterator[bytes]:
    with resp:
        while True:
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
            if not chunk:
                return
            yield chunk
