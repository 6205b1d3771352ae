"""Serve benchmarks on solray and Ray: HTTP through the proxy, handle calls, time to first 200.

    .venv/bin/python benchmarks/serve.py                  # both engines, one after the other
    .venv/bin/python benchmarks/serve.py --duration 3     # shorter windows
    RAYMOD=ray .venv-ray/bin/python benchmarks/serve.py --worker --json /tmp/ray-serve.json

A trivial deployment (one replica, ``async def __call__`` returning a short string) is
measured with an asyncio HTTP/1.1 keep-alive client (one connection per concurrent
client, so the client stays cheap next to the server on a small machine): requests/s and
p50/p99 latency at concurrency 1 and 32, each over a fixed window. Handle calls/s are
``handle.remote().result()`` in a loop and 32 in flight from asyncio. "first 200" is the
time from ``serve.run`` (Serve not yet started) to the first successful HTTP response.
The engines run one after the other, never together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = {"solray": ROOT / ".venv", "ray": ROOT / ".venv-ray"}
# (name, unit, higher is better)
METRICS = [
    ("http c=1 requests/s", "req/s", True),
    ("http c=1 p50", "ms", False),
    ("http c=1 p99", "ms", False),
    ("http c=32 requests/s", "req/s", True),
    ("http c=32 p50", "ms", False),
    ("http c=32 p99", "ms", False),
    ("handle calls/s (sync)", "calls/s", True),
    ("handle calls/s (async, 32 in flight)", "calls/s", True),
    ("serve.run to first 200", "s", False),
]


# ---- the client ------------------------------------------------------------------------
async def _one_client(port: int, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length, chunked = 0, False
            for line in head.split(b"\r\n"):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line[15:])
                elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
                    chunked = True
            if chunked:  # Ray Serve's proxy answers in chunks
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"bad response: {head[:60]!r}")
            latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def http_load(port: int, concurrency: int, duration: float) -> dict:
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_one_client(port, start + duration, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"rps": len(latencies) / elapsed, "p50": pick(0.5), "p99": pick(0.99)}


def wait_first_200(port: int, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
        time.sleep(0.005)


# ---- one engine ---------------------------------------------------------------------------
def worker(duration: float, out: str) -> None:
    engine = os.environ.get("RAYMOD", "solray")
    if engine == "solray":
        sys.path.insert(0, str(ROOT))
    import importlib

    ray = importlib.import_module(engine)
    serve = importlib.import_module(f"{engine}.serve")
    ray.init(num_cpus=2, include_dashboard=False) if engine == "ray" else ray.init(num_cpus=2)
    port = 8000

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)
    class Noop:
        async def __call__(self, request):
            return "ok"

        async def ping(self):
            return 1

    results = {}
    t0 = time.perf_counter()
    handle = serve.run(Noop.bind())
    wait_first_200(port)
    results["serve.run to first 200"] = time.perf_counter() - t0
    asyncio.run(http_load(port, 4, 1.0))  # warm-up
    for c in (1, 32):
        r = asyncio.run(http_load(port, c, duration))
        results[f"http c={c} requests/s"] = r["rps"]
        results[f"http c={c} p50"] = r["p50"]
        results[f"http c={c} p99"] = r["p99"]
    for _ in range(200):
        handle.ping.remote().result()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < duration:
        handle.ping.remote().result()
        n += 1
    results["handle calls/s (sync)"] = n / (time.perf_counter() - start)

    async def in_flight() -> float:
        count, stop_at = 0, time.perf_counter() + duration

        async def loop() -> None:
            nonlocal count
            while time.perf_counter() < stop_at:
                await handle.ping.remote()
                count += 1

        begin = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(32)))
        return count / (time.perf_counter() - begin)

    results["handle calls/s (async, 32 in flight)"] = asyncio.run(in_flight())
    serve.shutdown()
    ray.shutdown()
    with open(out, "w") as f:
        json.dump({"engine": engine, "results": results}, f)
    for name, unit, _ in METRICS:
        print(f"{name:42s} {results[name]:12.2f} {unit}", flush=True)


# ---- both engines, side by side -----------------------------------------------------------
def run_engine(engine: str, duration: float) -> dict | None:
    python = VENVS[engine] / "bin" / "python"
    if not python.exists():
        print(f"# skipping {engine}: {python} not found", flush=True)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [str(python), __file__, "--worker", "--duration", str(duration), "--json", str(out)]
        print(f"# running {engine}", flush=True)
        proc = subprocess.run(cmd, env={**os.environ, "RAYMOD": engine}, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-12:])
            print(f"# {engine} failed (rc={proc.returncode}):\n{tail}", flush=True)
            return None
        return json.loads(out.read_text())["results"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured window")
    parser.add_argument("--worker", action="store_true", help="measure the engine named by RAYMOD")
    parser.add_argument("--json", default=None, help="(--worker) write results here")
    parser.add_argument("--engines", default="solray,ray")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.duration, args.json or os.devnull)
        return
    results = {e: run_engine(e, args.duration) for e in args.engines.split(",")}
    sol, ray = results.get("solray") or {}, results.get("ray") or {}
    print(f"\n{'metric':42s} {'solray':>12s} {'ray':>12s} {'solray/ray':>11s}")
    for name, unit, higher in METRICS:
        s, r = sol.get(name), ray.get(name)
        ratio = f"{s / r:.2f}x" if s is not None and r else "-"
        better = "" if s is None or r is None else ("  better" if (s > r) == higher else "  worse")
        fs = f"{s:.2f}" if s is not None else "-"
        fr = f"{r:.2f}" if r is not None else "-"
        print(f"{name:42s} {fs:>12s} {fr:>12s} {ratio:>11s}{better}   ({unit})")


if __name__ == "__main__":
    main()
