"""Core microbenchmarks on either engine: RAYMOD=ray|solray (default solray).

    RAYMOD=ray .venv-ray/bin/python benchmarks/core.py --json /tmp/ray.json
    .venv/bin/python benchmarks/core.py --only "actor calls"

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
import sys
import time
from pathlib import Path
from types import ModuleType

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", help="run only the metrics whose name contains this substring")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--seconds", type=float, help="timed loop per metric (default 1.5)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the suite N times and report each median"
    )
    parser.add_argument("--list", action="store_true", help="print the metric names and exit")
    args = parser.parse_args(argv)

    mb = load_microbenchmark()
    if args.list:
        print("\n".join(mb.metric_names(args.only)))
        return 0

    engine_name = os.environ.get("RAYMOD", "solray")
    engine = import_engine(engine_name)
    settings = mb.Settings(only=args.only)
    if args.seconds is not None:
        settings.seconds = args.seconds

    errors: list[dict[str, str]] = []
    width = max([len(n) for n in mb.metric_names(args.only)] + [10])

    def line(name: str, value: float, unit: str) -> str:
        return f"{name:<{width}}  {value:>12.3f} {unit}"

    def on_result(r: tuple[str, float, str]) -> None:
        print(line(*r), flush=True)

    def on_error(names: str, exc: BaseException) -> None:
        errors.append({"names": names, "error": f"{type(exc).__name__}: {exc}"})
        print(f"{names:<{width}}  {'nan':>12} ERROR {type(exc).__name__}: {exc}", flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(
        f"# engine={engine_name} {getattr(engine, '__version__', '?')} cpus={os.cpu_count()}"
        f" loadavg={load:.2f}",
        flush=True,
    )
    if load > 0.5:
        # On a 2-core machine any other busy process skews every rate here.
        print(
            f"# warning: machine is busy (1-min load {load:.2f}); numbers will be low", flush=True
        )
    started = time.time()
    samples: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    for i in range(args.repeat):
        if args.repeat > 1:
            print(f"# run {i + 1}/{args.repeat}", flush=True)
        for name, value, unit in mb.run_with(engine, settings, on_result, on_error):
            samples.setdefault(name, []).append(value)
            units[name] = unit
    # A median, not a mean: on a shared machine one disturbed run should not move the figure.
    results = [(n, statistics.median(v), units[n]) for n, v in samples.items()]
    if args.repeat > 1:
        print(f"# median of {args.repeat} runs", flush=True)
        for r in results:
            print(line(*r), flush=True)

    if args.json:
        doc = {
            "engine": engine_name,
            "engine_version": getattr(engine, "__version__", None),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": round(load, 2),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": round(time.time() - started, 1),
            "seconds_per_metric": settings.seconds,
            "repeat": args.repeat,
            "results": [
                {"name": n, "value": v, "unit": u, "higher_is_better": mb.higher_is_better(u)}
                for n, v, u in results
            ],
            "samples": samples,
            "errors": errors,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if errors and not results else 0


if __name__ == "__main__":
    sys.exit(main())
