"""The benchmark harness's own logic: no cluster is started here, so these stay fast."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


core = _load(ROOT / "benchmarks" / "core.py", "_bench_core")
compare = _load(ROOT / "benchmarks" / "compare.py", "_bench_compare")
mb = core.load_microbenchmark()


def test_loading_by_path_does_not_import_solray() -> None:
    # core.py must run in the Ray venv, where solray is not installed.
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import core; core.load_microbenchmark();"
        "assert not any(m == 'solray' or m.startswith('solray.') for m in sys.modules), sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_direction_follows_unit() -> None:
    assert mb.higher_is_better("/s") is True
    assert mb.higher_is_better("GB/s") is True
    assert mb.higher_is_better("s") is False
    assert mb.higher_is_better("MB") is False
    assert mb.higher_is_better("count") is None


def test_metric_names_are_unique_and_filterable() -> None:
    names = mb.metric_names()
    assert len(names) == len(set(names))
    for expected in (
        "single client tasks sync",
        "1:1 actor calls async",
        "n:n async-actor calls async",
        "single client put gigabytes",
        "single client wait 1k refs",
    ):
        assert expected in names
    assert mb.metric_names("actor calls sync") == [
        "1:1 actor calls sync",
        "1:1 async-actor calls sync",
    ]


def test_zero_copy_rejects_copies() -> None:
    owned = np.ones(1000)
    assert not mb.is_zero_copy(owned)
    # A read-only view over a private bytes copy fools the flags, not the mapping check.
    copied = np.frombuffer(owned.tobytes(), dtype=owned.dtype)
    assert not copied.flags.owndata and not copied.flags.writeable
    assert not mb.is_zero_copy(copied)


def test_zero_copy_accepts_shared_file_mapping(tmp_path: Path) -> None:
    path = tmp_path / "obj"
    path.write_bytes(np.ones(1000).tobytes())
    mapped = np.memmap(path, dtype=np.float64, mode="r")
    assert mb.is_zero_copy(np.asarray(mapped))


def _run(values: dict[str, float], units: dict[str, str]) -> dict:
    return {
        "engine": "x",
        "engine_version": "1",
        "python": "3",
        "platform": "p",
        "cpus": 2,
        "started": "t",
        "duration_s": 1.0,
        "cpu_busy_at_start": 0.0,
        "seconds_per_metric": 1.5,
        "results": [
            {
                "name": n,
                "value": v,
                "unit": units[n],
                "higher_is_better": mb.higher_is_better(units[n]),
            }
            for n, v in values.items()
        ],
        "errors": [],
    }


@pytest.mark.parametrize(("stat", "rate", "init"), [("best", 300.0, 1.0), ("median", 200.0, 2.0)])
def test_combine_takes_best_in_each_direction(stat: str, rate: float, init: float) -> None:
    units = {"tasks": "/s", "cold init": "s"}
    runs = [
        _run({"tasks": 100.0, "cold init": 3.0}, units),
        _run({"tasks": 300.0, "cold init": 1.0}, units),
        _run({"tasks": 200.0, "cold init": 2.0}, units),
    ]
    doc = core.combine(runs, stat)
    got = {r["name"]: r["value"] for r in doc["results"]}
    assert got == {"tasks": rate, "cold init": init}
    assert doc["samples"]["tasks"] == [100.0, 300.0, 200.0]


def test_verdict_accounts_for_direction() -> None:
    assert compare.verdict(200.0, 100.0, True) == ("2.00", "yes")
    assert compare.verdict(200.0, 100.0, False) == ("2.00", "no")
    assert compare.verdict(0.5, 5.0, False) == ("0.10", "yes")
    assert compare.verdict(101.0, 100.0, True)[1] == "same"
    assert compare.verdict(None, 100.0, True) == ("-", "-")


def test_table_lists_metrics_from_either_engine() -> None:
    units = {"a": "/s", "b": "MB"}
    docs = {"solray": _run({"a": 10.0}, units), "ray": _run({"a": 5.0, "b": 700.0}, units)}
    lines = compare.table(docs)
    assert lines[0].split(" | ")[0].strip() == "metric"
    body = {ln.split(" | ")[0].strip(): ln for ln in lines[2:]}
    assert body["a"].rstrip().endswith("yes")
    assert "700" in body["b"] and body["b"].rstrip().endswith("-")
