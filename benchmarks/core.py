"""Core microbenchmarks on either engine: RAYMOD=ray|solray (default solray).

    RAYMOD=ray .venv-ray/bin/python benchmarks/core.py --json /tmp/ray.json
    .venv/bin/python benchmarks/core.py --only "actor calls"
    .venv/bin/python benchmarks/core.py --repeat 3 --stat best --json /tmp/solray.json

The measurements live in solray/_private/microbenchmark.py and are loaded here by file path, not
imported as part of solray, so this script also runs in a venv that has Ray but no solray.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_FILE = ROOT / "solray" / "_private" / "microbenchmark.py"


def load_microbenchmark() -> ModuleType:
    """The benchmark module, loaded from its file without importing the solray package."""
    name = "_solray_microbenchmark"
    spec = importlib.util.spec_from_file_location(name, BENCH_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {BENCH_FILE}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec: dataclasses look their module up in sys.modules while defining.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_engine(name: str) -> ModuleType:
    """Import the engine; fall back to this checkout when solray is not pip-installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if name != "solray":
            raise
    # The cold-init subprocess and the engine's own workers inherit the environment, so the
    # checkout goes on PYTHONPATH as well as sys.path.
    sys.path.append(str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p
    )
    return importlib.import_module(name)


def cpu_busy(seconds: float = 1.0) -> float:
    """Percent of all cores busy over the next `seconds` (the load average lags by a minute)."""
    import psutil

    return float(psutil.cpu_percent(interval=seconds))


def wait_for_quiet(max_wait: float, threshold: float = 15.0) -> float:
    """Wait up to `max_wait` s for the machine to go idle; the busy percent when we start."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy(2.0)
    return busy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", help="run only the metrics whose name contains this substring")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--seconds", type=float, help="timed loop per metric (default 1.5)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the suite N times, each in a fresh process"
    )
    parser.add_argument(
        "--stat",
        choices=("best", "median"),
        default="best",
        help="how repeats combine (default best: contention only ever makes a run worse)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="seconds to wait for an idle machine before each run (default 0, or 60 with --repeat)",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds before a hung metric group is abandoned (default 90)"
    )
    parser.add_argument("--list", action="store_true", help="print the metric names and exit")
    return parser.parse_args(argv)


def run_once(args: argparse.Namespace, mb: ModuleType) -> dict[str, Any]:
    """One pass of the suite in this process, printing each metric as it is measured."""
    engine_name = os.environ.get("RAYMOD", "solray")
    engine = import_engine(engine_name)
    settings = mb.Settings(only=args.only)
    if args.seconds is not None:
        settings.seconds = args.seconds
    if args.timeout is not None:
        settings.timeout = args.timeout
    errors: list[dict[str, str]] = []
    width = max([len(n) for n in mb.metric_names(args.only)] + [10])

    def on_result(r: tuple[str, float, str]) -> None:
        print(format_line(r, width), flush=True)

    def on_error(names: str, exc: BaseException) -> None:
        errors.append({"names": names, "error": f"{type(exc).__name__}: {exc}"})
        print(f"{names:<{width}}  {'nan':>12} ERROR {type(exc).__name__}: {exc}", flush=True)

    busy = wait_for_quiet(args.quiet_wait or 0.0)
    print(
        f"# engine={engine_name} {getattr(engine, '__version__', '?')} cpus={os.cpu_count()}"
        f" cpu_busy_at_start={busy:.0f}%",
        flush=True,
    )
    if busy > 15:
        # On a 2-core machine any other busy process skews every rate here.
        print(f"# warning: machine is busy ({busy:.0f}% CPU); rates will be low", flush=True)
    started = time.time()
    results = mb.run_with(engine, settings, on_result=on_result, on_error=on_error)
    return {
        "engine": engine_name,
        "engine_version": getattr(engine, "__version__", None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "cpu_busy_at_start": round(busy, 1),
        "seconds_per_metric": settings.seconds,
        "results": [
            {"name": n, "value": v, "unit": u, "higher_is_better": mb.higher_is_better(u)}
            for n, v, u in results
        ],
        "errors": errors,
    }


def run_repeated(args: argparse.Namespace, mb: ModuleType) -> dict[str, Any]:
    """The suite `args.repeat` times, each in a fresh process so no run inherits another's
    driver memory or cluster; the metrics combined by `args.stat`."""
    passthrough: list[str] = []
    for flag, value in (
        ("--only", args.only),
        ("--seconds", args.seconds),
        ("--timeout", args.timeout),
    ):
        if value is not None:
            passthrough += [flag, str(value)]
    quiet_wait = 60.0 if args.quiet_wait is None else args.quiet_wait
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="solray-bench-") as tmp:
        for i in range(args.repeat):
            out = Path(tmp) / f"run{i}.json"
            print(f"# run {i + 1}/{args.repeat}", flush=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), *passthrough]
            cmd += ["--json", str(out), "--quiet-wait", str(quiet_wait)]
            subprocess.run(cmd, check=False)
            if out.exists():
                runs.append(json.loads(out.read_text()))
    if not runs:
        raise SystemExit("no run produced results")
    return combine(runs, args.stat)


def combine(runs: list[dict[str, Any]], stat: str) -> dict[str, Any]:
    """One document from several runs: each metric's best (or median) value, samples kept."""
    samples: dict[str, list[float]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for run in runs:
        for r in run["results"]:
            samples.setdefault(r["name"], []).append(r["value"])
            meta[r["name"]] = r
    results = []
    for name, values in samples.items():
        higher = meta[name]["higher_is_better"]
        if stat == "median" or higher is None:
            value = statistics.median(values)
        else:
            value = max(values) if higher else min(values)
        results.append({**meta[name], "value": value})
    first = runs[0]
    return {
        **{k: first[k] for k in ("engine", "engine_version", "python", "platform", "cpus")},
        "started": first["started"],
        "duration_s": round(sum(r["duration_s"] for r in runs), 1),
        "seconds_per_metric": first["seconds_per_metric"],
        "repeat": len(runs),
        "stat": stat,
        "runs": [{k: r[k] for k in ("started", "duration_s", "cpu_busy_at_start")} for r in runs],
        "results": results,
        "samples": samples,
        "errors": [e for r in runs for e in r["errors"]],
    }


def format_line(r: tuple[str, float, str], width: int) -> str:
    return f"{r[0]:<{width}}  {r[1]:>12.3f} {r[2]}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mb = load_microbenchmark()
    if args.list:
        print("\n".join(mb.metric_names(args.only)))
        return 0
    if args.repeat > 1:
        doc = run_repeated(args, mb)
        width = max([len(r["name"]) for r in doc["results"]] + [10])
        print(f"# {doc['stat']} of {doc['repeat']} runs", flush=True)
        for r in doc["results"]:
            print(format_line((r["name"], r["value"], r["unit"]), width), flush=True)
    else:
        doc = run_once(args, mb)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if doc["errors"] and not doc["results"] else 0


if __name__ == "__main__":
    sys.exit(main())
