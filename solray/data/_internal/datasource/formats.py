"""CSV, JSON, text, binary, NumPy and image files."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa

from solray.data._internal.block import column_to_arrow
from solray.data._internal.datasource.file_based import FileBasedDatasource


class CSVDatasource(FileBasedDatasource):
    _name = "CSV"
    _decode_ratio = 1.0

    def _read_file(self, f, path):
        from pyarrow import csv

        args = dict(self._reader_args)
        reader = csv.open_csv(
            f,
            read_options=args.pop("read_options", None),
            parse_options=args.pop("parse_options", None),
            convert_options=args.pop("convert_options", None),
        )
        if args:
            raise TypeError(f"read_csv got unexpected arrow_csv_args: {sorted(args)}")
        schema = reader.schema
        batches = list(reader)
        yield pa.Table.from_batches(batches, schema=schema)


class JSONDatasource(FileBasedDatasource):
    _name = "JSON"
    _default_extensions = ["json", "jsonl", "json.gz", "jsonl.gz"]
    _random_access = True

    def _read_file(self, f, path):
        from pyarrow import json as pajson

        args = dict(self._reader_args)
        lines = args.pop("lines", None)
        data = f.read()
        if path.endswith(".gz"):
            import gzip

            data = gzip.decompress(data)
        stripped = data.lstrip()
        if not stripped:
            return
        if lines is not True and stripped[:1] == b"[":
            rows = json.loads(data)
            if not isinstance(rows, list):
                raise ValueError("expected a JSON array of objects")
            from solray.data._internal.block import rows_to_block

            yield rows_to_block(rows)
            return
        if lines is not True and stripped[:1] == b"{" and b"\n" not in stripped.strip():
            yield pa.Table.from_pylist([json.loads(data)])
            return
        yield pajson.read_json(
            io.BytesIO(data),
            read_options=args.pop("read_options", None),
            parse_options=args.pop("parse_options", None),
        )


class TextDatasource(FileBasedDatasource):
    _name = "Text"

    def _read_file(self, f, path):
        encoding = self._reader_args.get("encoding", "utf-8")
        drop_empty = self._reader_args.get("drop_empty_lines", True)
        text = f.read().decode(encoding)
        lines = text.splitlines()
        if drop_empty:
            lines = [ln for ln in lines if ln.strip()]
        yield pa.table({"text": pa.array(lines, type=pa.string())})


class BinaryDatasource(FileBasedDatasource):
    _name = "Binary"

    def _read_file(self, f, path):
        yield pa.table({"bytes": pa.array([f.read()], type=pa.binary())})


class NumpyDatasource(FileBasedDatasource):
    _name = "Numpy"
    _default_extensions = ["npy"]

    def _read_file(self, f, path):
        args = dict(self._reader_args)
        allow_pickle = args.pop("allow_pickle", False)
        arr = np.load(io.BytesIO(f.read()), allow_pickle=allow_pickle, **args)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        yield pa.table({"data": column_to_arrow(arr, "data")})


class ImageDatasource(FileBasedDatasource):
    _name = "Image"
    _default_extensions = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif"]
    _decode_ratio = 5.0

    def __init__(self, paths, **kw):
        try:
            import PIL.Image  # noqa: F401
        except ImportError:
            raise ImportError("read_images needs Pillow: pip install pillow") from None
        super().__init__(paths, **kw)

    def _read_file(self, f, path):
        from PIL import Image

        size = self._reader_args.get("size")
        mode = self._reader_args.get("mode")
        image = Image.open(io.BytesIO(f.read()))
        if mode is not None:
            image = image.convert(mode)
        if size is not None:
            h, w = size
            image = image.resize((w, h))
        arr = np.asarray(image)
        yield pa.table({"image": column_to_arrow(arr[np.newaxis, ...], "image")})
