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
from apache_beam.io import iobase
from apache_beam.io.filesystems import FileSystems

from ..storage.layout import PART_PREFIX
from ..storage.rows import write_rows
from ..storage.options import StorageOptions


class _SinkWithStorage(iobase.Sink):
    """Beam's Parquet sink, setting the storage options first in each of its steps: the
    temporary folder, the writers, and the final renames each run in whichever worker
    process the runner picks, not necessarily one where another step of ours ran."""

    def __init__(self, sink: iobase.Sink, storage: StorageOptions | None):
        self._sink = sink
        self._storage = storage
        self.num_shards = getattr(sink, "num_shards", 0)

    def _apply(self):
        if self._storage is not None:
            self._storage.apply()

    def initialize_write(self):
        self._apply()
        return self._sink.initialize_write()

    def open_writer(self, init_result, uid):
        self._apply()
        return self._sink.open_writer(init_result, uid)

    def pre_finalize(self, init_result, writer_results):
        self._apply()
        return self._sink.pre_finalize(init_result, writer_results)

    def finalize_write(self, init_result, writer_results, pre_finalize_result):
        self._apply()
        return self._sink.finalize_write(init_result, writer_results, pre_finalize_result)

    def display_data(self):
        return self._sink.display_data()


class WriteResults(beam.PTransform):
    def __init__(self, directory: str, schema: pa.Schema, storage: StorageOptions | None = None):
        super().__init__()
        self._directory = directory
        self._schema = schema
        self._storage = storage

    def expand(self, rows):
        write = beam.io.WriteToParquet(
            FileSystems.join(self._directory, PART_PREFIX),
            self._schema,
            file_name_suffix=".parquet",
            codec="snappy",
        )
        write._sink = _SinkWithStorage(write._sink, self._storage)  # Beam keeps its sink there
        return rows | "WriteParquet" >> write


class _KeepRows(beam.DoFn):
    """Buffers finished rows and writes them as a durable row file every ``rows`` rows or
    ``seconds`` seconds (checked as rows come and at the end of each bundle). The
    buffer outlives bundles: on runners with small bundles (Flink, Spark) a file per bundle
    would make many tiny files."""

    def __init__(self, run_folder: str, schema: pa.Schema, rows: int, seconds: float, storage: StorageOptions | None):
        self._run_folder, self._schema, self._rows, self._seconds = run_folder, schema, rows, seconds
        self._storage = storage

    def setup(self):
        if self._storage is not None:
            self._storage.apply()
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

    def __init__(self, run_folder: str, schema: pa.Schema, rows: int, seconds: float, storage: StorageOptions | None = None):
        super().__init__()
        self._fn = _KeepRows(run_folder, schema, rows, seconds, storage)

    def expand(self, rows):
        return rows | beam.ParDo(self._fn)


class FinishRows(beam.PTransform):
    """A branch of finished rows -> the same rows, counted (``count``, a ``CountOutcomes``) and,
    with ``keep``, made durable (a ``KeepRows``). Applied to each branch of rows before the
    branches are flattened, as ``CountOutcomes`` must be: Beam's local runner materializes a
    Flatten, so a step after it would see the rows only once every one is scored."""

    def __init__(self, count: beam.PTransform, keep: KeepRows | None = None):
        super().__init__()
        self._count, self._keep = count, keep

    def expand(self, rows):
        counted = rows | "Count" >> self._count
        if self._keep is not None:
            counted | "Keep" >> self._keep
        return counted
