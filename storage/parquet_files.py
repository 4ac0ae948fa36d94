"""Files of the output folder, on any Beam filesystem: listing them (failures named, never
"nothing there"), reading a Parquet file, writing one so that it appears whole, and streaming
rows into one (:class:`ParquetRowWriter`, what the result files are written with)."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes

from ..model.errors import UsageError
from .filesystems import FileSystems


class OutputDirError(UsageError):
    """The output folder cannot be used as it is; the message names it and says why."""


def match(pattern: str) -> list[str]:
    """Paths matching ``pattern`` (Beam's globs: ``*`` within a folder, ``**`` across). A pattern
    under a folder that does not exist matches nothing; any other failure (no such bucket,
    access denied, the store unreachable) is an :class:`OutputDirError`, never "nothing there"."""
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception as exc:
        causes = getattr(exc, "exception_details", None) or {pattern: exc}
        cause = next(iter(causes.values()))
        while getattr(cause, "exception_details", None):  # Beam nests its errors
            cause = next(iter(cause.exception_details.values()))
        raise OutputDirError(f"cannot list {pattern}: {type(cause).__name__}: {cause}"[:500]) from None


def read_table(path: str, columns=None, present_only: bool = False) -> pa.Table:
    """A result file whole, or only its ``columns`` (then only their column chunks are read,
    not the whole file: on an object store, ranges of the object); with ``present_only``, those
    of them it has (files an older nsfw-scan wrote lack newer columns)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        if columns is None:
            return pq.read_table(io.BytesIO(f.read()))
        parquet = pq.ParquetFile(f)
        if present_only:
            columns = [name for name in columns if name in parquet.schema_arrow.names]
        return parquet.read(columns=columns)


def read_schema(path: str) -> pa.Schema:
    """A result file's schema, from its footer."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return pq.read_schema(f)


def write_table(path: str, table: pa.Table) -> None:
    """``path`` holds ``table`` as Parquet, appearing with all of it or not at all: a local file
    is written under another name and renamed, an object in a bucket is created whole."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    if "://" in path:
        with FileSystems.create(path) as f:
            f.write(buffer.getvalue())
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


class ParquetRowWriter:
    """Rows (dicts) streamed into an open binary file as Parquet with ``schema``: gathered into
    record batches of ``batch_rows`` rows, written as one row group once ``row_group_bytes``
    (uncompressed) are gathered and at :meth:`close`, which closes the file too."""

    def __init__(self, file, schema: pa.Schema, compression: str = "snappy", batch_rows: int = 1000,
                 row_group_bytes: int = 64 << 20):
        self._file, self._schema = file, schema
        self._batch_rows, self._row_group_bytes = batch_rows, row_group_bytes
        self._writer = pq.ParquetWriter(file, schema, compression=compression)
        self._rows, self._batches, self._bytes = [], [], 0

    def write(self, row: dict) -> None:
        self._rows.append(row)
        if len(self._rows) >= self._batch_rows:
            self._batch()

    def _batch(self) -> None:
        batch = pa.RecordBatch.from_pylist(self._rows, schema=self._schema)
        self._rows = []
        self._batches.append(batch)
        self._bytes += batch.nbytes
        if self._bytes >= self._row_group_bytes:
            self._row_group()

    def _row_group(self) -> None:
        if self._batches:
            self._writer.write_table(pa.Table.from_batches(self._batches, schema=self._schema))
        self._batches, self._bytes = [], 0

    def close(self) -> None:
        if self._rows:
            self._batch()
        self._row_group()
        self._writer.close()
        self._file.close()
