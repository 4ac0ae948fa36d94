"""Writing result rows as Parquet with the explicit output schema.

Beam's file sinks write into a temporary folder and rename into place only when the whole
run succeeded, so ``part-*.parquet`` files never appear half-written, and a row of a bundle the
runner retried is written once. Meanwhile ``KeepRows`` makes the rows durable as they come
(``storage/rows.py``), so that a killed run keeps what it had scored."""

from __future__ import annotations

import threading
import time

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filebasedsink import FileBasedSink
from apache_beam.io.filesystem import CompressionTypes

from ..storage.files import ParquetRowWriter
from ..storage.filesystems import FileSystems
from ..storage.layout import PART_PREFIX
from ..storage.options import StorageOptions
from ..storage.rows import write_rows
from .storage_step import WithStorage, storage_of


class _ParquetSink(FileBasedSink):
    """Result rows as Parquet files ``<prefix>-SSSSS-of-NNNNN.parquet`` (snappy), each written by
    ``storage/files.py``'s ``ParquetRowWriter``. Each of its steps applies the storage options
    first: the temporary folder, the writers, and the final renames each run in whichever
    worker process the runner picks, not necessarily one where another step of ours ran."""

    def __init__(self, file_path_prefix: str, schema: pa.Schema, storage: StorageOptions | None):
        super().__init__(file_path_prefix, coder=None, file_name_suffix=".parquet",
                         mime_type="application/x-parquet",
                         compression_type=CompressionTypes.UNCOMPRESSED)  # Parquet compresses its pages
        self._schema = schema
        self._storage = storage

    def _apply(self):
        if self._storage is not None:
            self._storage.apply()

    def initialize_write(self):
        self._apply()
        return super().initialize_write()

    def open_writer(self, init_result, uid):
        self._apply()
        return super().open_writer(init_result, uid)

    def pre_finalize(self, init_result, writer_results):
        self._apply()
        return super().pre_finalize(init_result, writer_results)

    def finalize_write(self, init_result, writer_results, pre_finalize_result):
        self._apply()
        return super().finalize_write(init_result, writer_results, pre_finalize_result)

    def open(self, temp_path):
        return ParquetRowWriter(super().open(temp_path), self._schema, compression="snappy")

    def write_record(self, writer: ParquetRowWriter, row: dict):
        writer.write(row)

    def close(self, writer: ParquetRowWriter):
        writer.close()

    def display_data(self):
        return {**super().display_data(), "codec": "snappy", "schema": str(self._schema)}


class WriteResults(beam.PTransform):
    """Result rows -> ``<directory>/part-*.parquet``, renamed into place once every row is
    written (Beam's ``Write`` of a file-based sink)."""

    def __init__(self, directory: str, schema: pa.Schema):
        super().__init__()
        self._prefix = FileSystems.join(directory, PART_PREFIX)
        self._schema = schema

    def expand(self, rows):
        return rows | "WriteParquet" >> beam.io.Write(_ParquetSink(self._prefix, self._schema, storage_of(rows)))


class _KeepRows(WithStorage):
    """Buffers finished rows and writes them as a durable row file every ``rows`` rows or
    ``seconds`` seconds (checked as rows come and at the end of each bundle). The
    buffer outlives bundles: on runners with small bundles (Flink, Spark) a file per bundle
    would make many tiny files."""

    def __init__(self, run_folder: str, schema: pa.Schema, rows: int, seconds: float):
        super().__init__()
        self._run_folder, self._schema, self._rows, self._seconds = run_folder, schema, rows, seconds

    def setup(self):
        super().setup()
        self._buffer, self._since, self._lock = [], time.monotonic(), threading.Lock()

    def _flush(self) -> None:
        with self._lock:
            due = self._buffer and (len(self._buffer) >= self._rows or time.monotonic() - self._since >= self._seconds)
            if due:
                rows, self._buffer = self._buffer, []
        if due:
            write_rows(self._run_folder, rows, self._schema)

    def process(self, row):
        with self._lock:
            if not self._buffer:  # the time counts from the oldest row not yet durable
                self._since = time.monotonic()
            self._buffer.append(row)
        self._flush()
        return ()  # the rows go on from the counting step; nothing comes out of this one

    def finish_bundle(self):
        self._flush()

    # No flush at teardown: it may come after the run finished and removed its row files (the
    # rows of every finished bundle are in its result files by then).


class KeepRows(beam.PTransform):
    """Finished rows -> nothing: they are written to durable row files of ``run_folder`` while the
    run goes (removed when it finishes, salvaged by the next run if it was killed)."""

    def __init__(self, run_folder: str, schema: pa.Schema, rows: int, seconds: float):
        super().__init__()
        self._fn = _KeepRows(run_folder, schema, rows, seconds)

    def expand(self, rows):
        return rows | beam.ParDo(self._fn.using(storage_of(rows)))


class FinishRows(beam.PTransform):
    """A branch of finished rows -> the same rows, counted (``count``, a ``CountOutcomes``) and,
    with ``keep``, made durable (a ``KeepRows``); applied to each branch before the branches
    are flattened (``CountOutcomes`` says why)."""

    def __init__(self, count: beam.PTransform, keep: KeepRows | None = None):
        super().__init__()
        self._count, self._keep = count, keep

    def expand(self, rows):
        counted = rows | "Count" >> self._count
        if self._keep is not None:
            counted | "Keep" >> self._keep
        return counted
