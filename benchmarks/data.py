"""Data benchmarks on either engine: RAYMOD=ray|solray (default solray).

    .venv/bin/python benchmarks/data.py                       # solray
    RAYMOD=ray .venv-ray/bin/python benchmarks/data.py        # Ray (needs pandas + pyarrow there)
    .venv/bin/python benchmarks/data.py --only groupby --scale 0.5 --json /tmp/solray-data.json

Every workload runs the same code through ``<engine>.data`` and prints ``name  value unit``.
Rates are computed over the whole consuming call (planning, scheduling, execution), after one
untimed warm-up run of a small pipeline so worker start-up is not counted. ``--scale`` shrinks
or grows every dataset (1.0: the sizes in the table printed by ``--list``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np
from _engine import import_engine  # noqa: E402  (a sibling module: run as a script)

ENGINE = os.environ.get("RAYMOD", "solray")
ray = import_engine(ENGINE)
import_engine(f"{ENGINE}.data")


# --- workloads --------------------------------------------------------------------------------
# Module-level functions: both engines ship them to workers by reference or by value alike.


def double(batch):
    return {"id": batch["id"] * 2}


def add_key(batch):
    ids = batch["id"]
    return {"key": ids % 1000, "value": (ids % 7919).astype(np.float64)}


def normalize(batch):
    x = batch["x"]
    return {"x": (x - x.mean()) / (x.std() + 1e-9), "y": batch["y"]}


class Scaler:
    """A callable class: constructed once per actor."""

    def __init__(self):
        self.factor = np.float64(3.0)

    def __call__(self, batch):
        return {"id": batch["id"] * self.factor}


def write_parquet_files(root: str, rows: int, files: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    per = rows // files
    total = 0
    for i in range(files):
        t = pa.table({
            "x": rng.random(per),
            "y": rng.integers(0, 1000, per),
            "z": rng.random(per),
            "w": rng.random(per),
        })
        path = os.path.join(root, f"part-{i:04}.parquet")
        pq.write_table(t, path, row_group_size=per // 4 or 1)
        total += os.path.getsize(path)
    return total


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(only: str | None, scale: float) -> dict[str, tuple[float, str]]:
    rd = ray.data
    ctx = rd.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    results: dict[str, tuple[float, str]] = {}

    def want(name: str) -> bool:
        return only is None or only in name

    def record(name: str, value: float, unit: str) -> None:
        results[name] = (value, unit)
        print(f"{name:<48} {value:>14,.2f} {unit}", flush=True)

    # Warm-up: start workers and load the libraries in them.
    rd.range(1000).map_batches(double).take_all()

    n = int(20_000_000 * scale)
    if want("map_batches rows/s"):
        def map_batches():
            rows = 0
            for b in rd.range(n).map_batches(double).iter_batches(batch_size=None):
                rows += len(b["id"])
            return rows

        s, rows = timed(map_batches)
        assert rows == n
        record("range + map_batches rows/s", rows / s, "/s")

    if want("actor pool rows/s"):
        def actors():
            return sum(len(b["id"]) for b in rd.range(n // 4).map_batches(Scaler, concurrency=2)
                       .iter_batches(batch_size=None))

        s, rows = timed(actors)
        record("map_batches callable class (actor pool) rows/s", rows / s, "/s")

    tmp = tempfile.mkdtemp(prefix="data-bench-")
    try:
        if want("parquet") or want("iter_batches"):
            pq_rows = int(16_000_000 * scale)
            src = os.path.join(tmp, "src")
            os.makedirs(src)
            size = write_parquet_files(src, pq_rows, 16)
            mem_bytes = pq_rows * 32

            if want("read_parquet + map_batches + count"):
                s, count = timed(lambda: rd.read_parquet(src).map_batches(normalize).count())
                assert count == pq_rows
                record("read_parquet + map_batches + count MB/s", mem_bytes / s / 1e6, "MB/s")

            if want("read_parquet + iter_batches"):
                def read_iter():
                    nbytes = 0
                    for b in rd.read_parquet(src).iter_batches(batch_size=4096):
                        nbytes += sum(v.nbytes for v in b.values())
                    return nbytes

                s, nbytes = timed(read_iter)
                record("read_parquet + iter_batches MB/s", nbytes / s / 1e6, "MB/s")
            print(f"# parquet dataset: {pq_rows:,} rows, {size / 1e6:.0f} MB on disk, "
                  f"{mem_bytes / 1e6:.0f} MB in memory", flush=True)

        if want("iter_batches rows/s"):
            mat = rd.range(n).materialize()

            def iterate():
                return sum(len(b["id"]) for b in mat.iter_batches(batch_size=1024))

            s, rows = timed(iterate)
            record("iter_batches (materialized, batch 1024) rows/s", rows / s, "/s")
            del mat

        if want("groupby"):
            g_rows = int(5_000_000 * scale)
            data = rd.range(g_rows).map_batches(add_key).materialize()
            s, out = timed(lambda: data.groupby("key").mean("value").take_all())
            assert len(out) == 1000
            record("groupby mean (1000 keys) rows/s", g_rows / s, "/s")
            del data

        if want("shuffle") or want("sort"):
            s_rows = int(2_000_000 * scale)
            data = rd.range(s_rows).map_batches(add_key).materialize()
            if want("random_shuffle"):
                s, count = timed(lambda: data.random_shuffle().materialize().count())
                record("random_shuffle rows/s", s_rows / s, "/s")
            if want("sort"):
                s, count = timed(lambda: data.sort("value").materialize().count())
                record("sort rows/s", s_rows / s, "/s")
            del data

        if want("write_parquet"):
            w_rows = int(10_000_000 * scale)
            data = rd.range(w_rows).map_batches(add_key).materialize()
            out = os.path.join(tmp, "out")
            s, _ = timed(lambda: data.write_parquet(out))
            record("write_parquet MB/s", w_rows * 16 / s / 1e6, "MB/s")
            del data

        if want("small pipeline"):
            def small():
                ds = rd.from_items([{"x": i, "y": i % 3} for i in range(1000)])
                ds = ds.map(lambda r: {"x": r["x"] * 2, "y": r["y"]}).filter(lambda r: r["y"] != 1)
                ds = ds.map_batches(lambda b: {"x": b["x"] + 1, "y": b["y"]}, batch_size=64)
                return ds.groupby("y").count().take_all()

            s, _ = timed(small)
            record("small pipeline (items->map->filter->map_batches->groupby) s", s, "s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", help="run only the workloads whose name contains this")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every dataset size")
    parser.add_argument("--json", help="write results to this file")
    parser.add_argument("--num-cpus", type=int, default=None)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    init_kwargs = {"num_cpus": args.num_cpus} if args.num_cpus else {}
    if ENGINE == "ray":
        init_kwargs["include_dashboard"] = False
    ray.init(**init_kwargs)
    print(f"# engine={ENGINE} version={getattr(ray, '__version__', '?')} init={time.perf_counter() - t0:.2f}s "
          f"cpus={ray.cluster_resources().get('CPU')}", flush=True)
    try:
        results = run(args.only, args.scale)
    finally:
        ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engine": ENGINE, "scale": args.scale,
                       "results": {k: {"value": v, "unit": u} for k, (v, u) in results.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
