"""solray.data: lazy, streaming, distributed datasets of Arrow blocks (Ray's ``ray.data``).

    import solray as ray
    ds = ray.data.read_parquet("/data/taxi").filter(expr="fare > 0")
    ds = ds.map_batches(normalize, batch_size=1024)
    for batch in ds.iter_batches(batch_size=256):
        ...

Nothing executes until a consumption API (iteration, ``take``, ``count``, ``write_*``,
``materialize``...) runs the plan through the streaming executor.
"""

from __future__ import annotations

from solray.data import aggregate
from solray.data._internal.block import BlockMetadata
from solray.data._internal.datasource.sinks import FilenameProvider, SaveMode
from solray.data.compute import ActorPoolStrategy, TaskPoolStrategy
from solray.data.context import DataContext, DatasetContext, ExecutionOptions, ExecutionResources
from solray.data.dataset import Dataset, MaterializedDataset
from solray.data.datasource import Datasink, Datasource, ReadTask, WriteResult
from solray.data.grouped_data import GroupedData
from solray.data.iterator import DataIterator
from solray.data.read_api import (
    from_arrow,
    from_arrow_refs,
    from_blocks,
    from_items,
    from_numpy,
    from_numpy_refs,
    from_pandas,
    from_pandas_refs,
    from_torch,
    range,
    range_tensor,
    read_binary_files,
    read_csv,
    read_datasource,
    read_images,
    read_json,
    read_numpy,
    read_parquet,
    read_text,
)
from solray.data.schema import Schema

DatasetIterator = DataIterator


def __getattr__(name: str):
    if name == "preprocessors":
        import importlib

        return importlib.import_module("solray.data.preprocessors")
    raise AttributeError(f"module 'solray.data' has no attribute {name!r}")


__all__ = [
    "ActorPoolStrategy",
    "BlockMetadata",
    "DataContext",
    "DataIterator",
    "Datasink",
    "Dataset",
    "DatasetContext",
    "DatasetIterator",
    "Datasource",
    "ExecutionOptions",
    "ExecutionResources",
    "FilenameProvider",
    "GroupedData",
    "MaterializedDataset",
    "ReadTask",
    "SaveMode",
    "Schema",
    "TaskPoolStrategy",
    "WriteResult",
    "aggregate",
    "from_arrow",
    "from_arrow_refs",
    "from_blocks",
    "from_items",
    "from_numpy",
    "from_numpy_refs",
    "from_pandas",
    "from_pandas_refs",
    "from_torch",
    "range",
    "range_tensor",
    "read_binary_files",
    "read_csv",
    "read_datasource",
    "read_images",
    "read_json",
    "read_numpy",
    "read_parquet",
    "read_text",
]
