"""Run benchmarks/core.py on solray (.venv) and on Ray (.venv-ray) and print them side by side.

    .venv/bin/python benchmarks/compare.py                      # both engines, full suite
    .venv/bin/python benchmarks/compare.py --only "actor calls"
    .venv/bin/python benchmarks/compare.py --ray-json benchmarks/ray_baseline.json   # reuse Ray's

The engines run one after the other, never together: on a small machine they would steal each
other's cores and both numbers would be wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "benchmarks" / "core.py"
VENVS = {"solray": ROOT / ".venv", "ray": ROOT / ".venv-ray"}
# Differences inside this band are noise on a shared 2-core machine, not a verdict.
SAME_BAND = 0.02


def run_engine(engine: str, out: Path, extra: list[str]) -> dict[str, Any] | None:
    """Run core.py for one engine in its own venv; its JSON document, or None if it could not run."""
    python = VENVS[engine] / "bin" / "python"
    if not python.exists():
        hint = " (create it with benchmarks/setup_ray_venv.sh)" if engine == "ray" else ""
        print(f"# skipping {engine}: {python} not found{hint}", flush=True)
        return None
    cmd = [str(python), str(CORE), "--json", str(out), *extra]
    print(f"# running {engine}: {' '.join(cmd)}", flush=True)
    env = {**os.environ, "RAYMOD": engine}
    # The engines' own logging goes to stderr; it is shown only when the run fails.
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(f"# {engine} run failed (rc={proc.returncode}):\n{tail}", flush=True)
        return json.loads(out.read_text()) if out.exists() else None
    return json.loads(out.read_text())


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def verdict(solray: float | None, ray: float | None, higher: bool | None) -> tuple[str, str]:
    """(ratio solray/ray, whether solray is better given the metric's direction)."""
    if solray is None or ray is None or ray == 0:
        return "-", "-"
    ratio = solray / ray
    if higher is None:
        return f"{ratio:.2f}", "-"
    if abs(ratio - 1) <= SAME_BAND:
        return f"{ratio:.2f}", "same"
    better = ratio > 1 if higher else ratio < 1
    return f"{ratio:.2f}", "yes" if better else "no"


def table(docs: dict[str, dict[str, Any] | None]) -> list[str]:
    """The comparison rows, metrics in suite order (solray's first, then any only Ray has)."""
    values: dict[str, dict[str, dict[str, Any]]] = {}
    order: list[str] = []
    for engine in ("solray", "ray"):
        doc = docs.get(engine) or {}
        for r in doc.get("results", []):
            if r["name"] not in values:
                values[r["name"]] = {}
                order.append(r["name"])
            values[r["name"]][engine] = r
    header = ["metric", "unit", "solray", "ray", "ratio", "better?"]
    rows = [header]
    for name in order:
        per = values[name]
        s, r = per.get("solray"), per.get("ray")
        unit = (s or r or {}).get("unit", "")
        higher = (s or r or {}).get("higher_is_better")
        sv = s["value"] if s else None
        rv = r["value"] if r else None
        rows.append([name, unit, fmt(sv), fmt(rv), *verdict(sv, rv, higher)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [
            c.ljust(w) if j < 2 else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(" | ".join(cells))
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", help="run only the metrics whose name contains this substring")
    parser.add_argument("--seconds", type=float, help="timed loop per metric (default 1.5)")
    parser.add_argument("--repeat", type=int, help="runs per engine, each in a fresh process")
    parser.add_argument("--stat", choices=("best", "median"), help="how repeats combine")
    parser.add_argument(
        "--timeout", type=float, help="seconds before a hung metric group is abandoned"
    )
    parser.add_argument(
        "--ray-json", type=Path, help="use these saved Ray results instead of running Ray"
    )
    parser.add_argument(
        "--out-dir", type=Path, help="keep each engine's JSON here (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="solray-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    for flag, value in (
        ("--only", args.only),
        ("--seconds", args.seconds),
        ("--repeat", args.repeat),
        ("--stat", args.stat),
        ("--timeout", args.timeout),
    ):
        if value is not None:
            extra += [flag, str(value)]
    docs: dict[str, dict[str, Any] | None] = {
        "solray": run_engine("solray", out_dir / "solray.json", extra)
    }
    if args.ray_json:
        docs["ray"] = json.loads(args.ray_json.read_text())
        if args.only:
            docs["ray"]["results"] = [r for r in docs["ray"]["results"] if args.only in r["name"]]
        print(f"# ray: using saved results from {args.ray_json}", flush=True)
    else:
        docs["ray"] = run_engine("ray", out_dir / "ray.json", extra)

    print()
    print("\n".join(table(docs)))
    for engine, doc in docs.items():
        for err in (doc or {}).get("errors", []):
            print(f"# {engine} error in [{err['names']}]: {err['error']}")
    return 0 if any(docs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
