"""Jobs API benchmarks on either engine: RAYMOD=ray|solray (default solray).

    .venv/bin/python benchmarks/jobs.py
    RAYMOD=ray .venv-ray/bin/python benchmarks/jobs.py
    .venv/bin/python benchmarks/jobs.py --json /tmp/solray-jobs.json --only submit

Starts a head with its dashboard (``solray start --head`` / ``ray start --head``) on free
ports, drives it with the engine's own ``JobSubmissionClient`` (HTTP, as a user would), and
stops it. Every metric prints one line, ``name value unit`` (``s``: lower is better,
``/s``: higher is better):

  job submit -> SUCCEEDED     a trivial job (``echo``): from ``submit_job`` until
                              ``get_job_status`` says SUCCEEDED (polled every 5 ms); median
                              of --jobs runs after one warm-up
  job logs retrieval          ``get_job_logs`` of a finished job (a few lines); median of 50
  dashboard list_jobs p50/p99 --clients threads, each with its own client, call
                              ``list_jobs`` --calls times at once (the cluster then holds
                              about --jobs + 1 jobs); latency percentiles over all calls
  dashboard list_jobs rate    those calls per second of wall time
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = os.environ.get("RAYMOD", "solray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Head:
    """A head with a dashboard, started with the engine's CLI."""

    def __init__(self, num_cpus: int):
        self.tmp = tempfile.mkdtemp(prefix=f"jobs-bench-{ENGINE}-")
        self.dashboard_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "SOLRAY_"))}
        self.env.pop("RAY_AUTH_MODE", None)
        self.headers: dict = {}
        if ENGINE == "ray":
            # Both engines with token authentication (Ray 2.60's own, token in ~/.ray/auth_token):
            # the comparison includes checking the token on every request.
            os.environ["RAY_AUTH_MODE"] = self.env["RAY_AUTH_MODE"] = "token"
            cli = [str(Path(sys.executable).parent / "ray")]
            args = ["start", "--head", f"--port={free_port()}", f"--dashboard-port={self.dashboard_port}",
                    "--include-dashboard=true", f"--num-cpus={num_cpus}", f"--temp-dir={self.tmp}",
                    "--disable-usage-stats"]
        else:
            cli = [sys.executable, "-m", "solray.cli.main"]
            self.env.update(SOLRAY_TMPDIR=self.tmp, XDG_CONFIG_HOME=os.path.join(self.tmp, "config"))
            args = ["start", "--head", "--port", "0", "--dashboard-port", str(self.dashboard_port),
                    "--num-cpus", str(num_cpus)]
        self.cli = cli
        started = time.perf_counter()
        subprocess.run(cli + args, env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if ENGINE != "ray":
            with open(os.path.join(self.tmp, "current_cluster.json")) as f:
                self.headers = {"Authorization": f"Bearer {json.load(f)['token']}"}
        self.url = f"http://127.0.0.1:{self.dashboard_port}"
        self._wait_ready()
        self.start_s = time.perf_counter() - started

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                self.client().list_jobs()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def client(self):
        if ENGINE == "ray":
            from ray.job_submission import JobSubmissionClient
        else:
            from solray.job_submission import JobSubmissionClient
        return JobSubmissionClient(self.url, headers=self.headers or None)

    def stop(self) -> None:
        subprocess.run(self.cli + ["stop"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def report(results: list, name: str, value: float, unit: str) -> None:
    results.append((name, value, unit))
    print(f"{name:<40} {value:>12.4f} {unit}", flush=True)


def wait_succeeded(client, sid: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = str(client.get_job_status(sid)).split(".")[-1]
        if status == "SUCCEEDED":
            return
        if status in ("FAILED", "STOPPED"):
            raise RuntimeError(f"job {sid} ended {status}: {client.get_job_info(sid).message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {sid} still {status}")
        time.sleep(0.005)


def bench_submit(head: Head, results: list, jobs: int) -> str:
    client = head.client()
    wait_succeeded(client, client.submit_job(entrypoint="echo warm-up"))
    samples = []
    sid = ""
    for i in range(jobs):
        t = time.perf_counter()
        sid = client.submit_job(entrypoint=f"echo job-{i}; echo second line; echo third line")
        wait_succeeded(client, sid)
        samples.append(time.perf_counter() - t)
    report(results, "job submit -> SUCCEEDED", statistics.median(samples), "s")
    report(results, "job submit -> SUCCEEDED (min)", min(samples), "s")
    return sid


def bench_logs(head: Head, results: list, sid: str) -> None:
    client = head.client()
    assert "third line" in client.get_job_logs(sid)
    samples = []
    for _ in range(50):
        t = time.perf_counter()
        client.get_job_logs(sid)
        samples.append(time.perf_counter() - t)
    report(results, "job logs retrieval", statistics.median(samples), "s")


def bench_load(head: Head, results: list, clients: int, calls: int) -> None:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def worker():
        client = head.client()
        mine = []
        barrier.wait()
        try:
            for _ in range(calls):
                t = time.perf_counter()
                client.list_jobs()
                mine.append(time.perf_counter() - t)
        except BaseException as e:  # reported below
            errors.append(e)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    latencies.sort()
    report(results, f"dashboard list_jobs p50 ({clients} clients)", latencies[len(latencies) // 2], "s")
    report(results, f"dashboard list_jobs p99 ({clients} clients)", latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "s")
    report(results, f"dashboard list_jobs rate ({clients} clients)", len(latencies) / wall, "/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=10)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--calls", type=int, default=25)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--only", default=None, help="submit, logs or load")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if ENGINE != "ray":
        sys.path.insert(0, str(ROOT))
    results: list = []
    head = Head(args.num_cpus)
    print(f"# {ENGINE}: head with dashboard up in {head.start_s:.2f} s at {head.url}", flush=True)
    try:
        sid = None
        if args.only in (None, "submit", "logs"):
            sid = bench_submit(head, results, args.jobs)
        if args.only in (None, "logs"):
            bench_logs(head, results, sid)
        if args.only in (None, "load"):
            bench_load(head, results, args.clients, args.calls)
    finally:
        head.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": ENGINE, "results": [{"name": n, "value": v, "unit": u} for n, v, u in results]}, f, indent=1)


if __name__ == "__main__":
    main()
