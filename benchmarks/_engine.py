"""The engine a benchmark measures: ``RAYMOD=ray|solray``, importable from a source checkout."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def import_engine(name: str) -> Any:
    """Import ``name``; solray falls back to this checkout (and passes it on to workers)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if name != "solray":
            raise
    sys.path.append(str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return importlib.import_module(name)
