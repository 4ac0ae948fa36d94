"""Writing result rows as Parquet with the explicit output schema.

Beam's file sinks write into a temporary folder and rename into place only when the whole
run succeeded, so ``part-*.parquet`` files never appear half-written, and a row of a bundle the
runner retried is written once. Meanwhile ``KeepRows`` makes the rows durable as they come
(``storage/rows.py``), so that a killed run keeps what it had scored, and a run that stops on a
signal or a failure makes durable every row it had finished (:func:`flush_kept_rows` in the
launching process; its local runner's worker processes flush theirs as they end)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filebasedsink import FileBasedSink
from apache_beam.io.filesystem import CompressionTypes

from ..storage.filesystems import FileSystems
from ..storage.layout import PART_PREFIX
from ..storage.options import StorageOptions
from ..storage.parquet_files import ParquetRowWriter
from ..storage.results_folder import run_result_files
from ..storage.rows import write_rows
from .storage_step import ParDoWithStorage, WithStorage, storage_of


class _ParquetSink(FileBasedSink):
    """Result rows as Parquet files ``<prefix>-SSSSS-of-NNNNN.parquet`` (snappy), each written by
    ``storage/parquet_files.py``'s ``ParquetRowWriter``. Each of its steps sets ``storage``, the
    pipeline's storage options, first. Beam's own Parquet sink cannot: Beam's ``Write`` makes
    the temporary folder and does the final renames in steps of its own that start from its own
    ``Create``, where no step of ours is fused to set the options (as ``UseStorage`` does for
    reading), and each runs in whichever worker process the runner picks; only the sink's
    methods run there."""

    def __init__(self, file_path_prefix: str, schema: pa.Schema, storage: StorageOptions):
        super().__init__(file_path_prefix, coder=None, file_name_suffix=".parquet",
                         mime_type="application/x-parquet",
                         compression_type=CompressionTypes.UNCOMPRESSED)  # Parquet compresses its pages
        self._schema = schema
        self.storage = storage

    def initialize_write(self):
        self.storage.apply()
        return super().initialize_write()

    def open_writer(self, init_result, uid):
        self.storage.apply()
        return super().open_writer(init_result, uid)

    def pre_finalize(self, init_result, writer_results):
        self.storage.apply()
        return super().pre_finalize(init_result, writer_results)

    def finalize_write(self, init_result, writer_results, pre_finalize_result):
        self.storage.apply()
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


_KEEPERS: weakref.WeakSet = weakref.WeakSet()  # this process's _KeepRows that have been set up
_AT_EXIT: list[bool] = []  # whether this process flushes its keepers as it ends


class _KeepRows(WithStorage):
    """Buffers finished rows and writes them as a durable row file every ``rows`` rows or
    ``seconds`` seconds (checked as rows come and at the end of each bundle). The
    buffer outlives bundles: on runners with small bundles (Flink, Spark) a file per bundle
    would make many tiny files.

    What is left in the buffer when the run stops: the launching process flushes its own
    (:func:`flush_kept_rows`) or forgets them once the run's results are whole
    (:func:`forget_kept_rows`). With ``flush_on_stop`` (the local runner, which ends its worker
    processes before it returns), a worker process of its own flushes them as it ends, at
    teardown or, when a signal ended it first, at exit, unless the run has finished (its result
    files hold those rows then, and the launcher may have removed its row files already)."""

    def __init__(self, run_folder: str, schema: pa.Schema, rows: int, seconds: float, flush_on_stop: bool = False):
        super().__init__()
        self._run_folder, self._schema, self._rows, self._seconds = run_folder, schema, rows, seconds
        self._launcher = os.getpid() if flush_on_stop else None  # the process that built the pipeline

    def setup(self):
        super().setup()
        self._buffer, self._since, self._lock, self._closed = [], time.monotonic(), threading.Lock(), False
        _KEEPERS.add(self)
        if self._launcher is not None and os.getpid() != self._launcher and not _AT_EXIT:
            _AT_EXIT.append(True)
            atexit.register(_flush_unfinished)

    def _flush(self, force: bool = False) -> int:
        with self._lock:
            due = self._buffer and not self._closed and (
                force or len(self._buffer) >= self._rows or time.monotonic() - self._since >= self._seconds)
            if due:
                rows, self._buffer = self._buffer, []
        if due:
            write_rows(self._run_folder, rows, self._schema)
        return len(rows) if due else 0

    def close(self, flush: bool) -> int:
        """Stop keeping rows: the buffer written first (``flush``) or dropped; returns the rows
        written. Rows that come later are not kept."""
        written = self._flush(force=True) if flush else 0
        with self._lock:
            self._closed, self._buffer = True, []
        return written

    def process(self, row):
        with self._lock:
            if not self._buffer:  # the time counts from the oldest row not yet durable
                self._since = time.monotonic()
            self._buffer.append(row)
        self._flush()
        yield row  # held before it is counted: a row counted as done is one a stop keeps

    def finish_bundle(self):
        self._flush()

    def teardown(self):
        if self._launcher is not None and os.getpid() != self._launcher:
            self.close(flush=not run_result_files(self._run_folder))


def _flush_unfinished() -> None:
    """In a worker process that is ending: its keepers' rows, written unless their run finished."""
    for keeper in list(_KEEPERS):
        try:
            keeper.close(flush=not run_result_files(keeper._run_folder))
        except Exception as exc:  # a process that ends: these rows are scored again by the next run
            logging.getLogger(__name__).warning("%s: rows not made durable as the worker ended: %s: %s",
                                                keeper._run_folder, type(exc).__name__, exc)


def flush_kept_rows() -> int:
    """After a run in this process failed or was stopped: every row its keepers hold is written
    now, and later rows are not kept; returns the rows written."""
    return sum(keeper.close(flush=True) for keeper in list(_KEEPERS))


def forget_kept_rows() -> None:
    """After a run in this process finished (its result files hold every row): its keepers stop
    and drop what they hold."""
    for keeper in list(_KEEPERS):
        keeper.close(flush=False)


class KeepRows(beam.PTransform):
    """Finished rows -> the same rows, written to durable row files of ``run_folder`` while the
    run goes (removed when it finishes, salvaged by the next run if it was killed).
    ``flush_on_stop``: the local runner's; see ``_KeepRows``."""

    def __init__(self, run_folder: str, schema: pa.Schema, rows: int, seconds: float, flush_on_stop: bool = False):
        super().__init__()
        self._fn = _KeepRows(run_folder, schema, rows, seconds, flush_on_stop)

    def expand(self, rows):
        return rows | ParDoWithStorage(self._fn)


class FinishRows(beam.PTransform):
    """A branch of finished rows -> the same rows, with ``keep`` held to be made durable (a
    ``KeepRows``), then counted (``count``, a ``CountOutcomes``); applied to each branch before
    the branches are flattened (``CountOutcomes`` says why)."""

    def __init__(self, count: beam.PTransform, keep: KeepRows | None = None):
        super().__init__()
        self._count, self._keep = count, keep

    def expand(self, rows):
        if self._keep is not None:
            rows = rows | "Keep" >> self._keep
        return rows | "Count" >> self._count
