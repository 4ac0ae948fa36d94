"""Writing result rows as Parquet with the explicit output schema.

Beam's file sinks write into a temporary folder and rename into place only when the whole
run succeeded, so ``part-*.parquet`` files never appear half-written."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io import iobase
from apache_beam.io.filesystems import FileSystems

from .filesystems import use_storage_options

PART_PREFIX = "part"


class _SinkWithStorage(iobase.Sink):
    """Beam's Parquet sink, setting the storage options first in each of its steps: the
    temporary folder, the writers, and the final renames each run in whichever worker
    process the runner picks, not necessarily one where another step of ours ran."""

    def __init__(self, sink: iobase.Sink, storage: dict | None):
        self._sink = sink
        self._storage = storage
        self.num_shards = getattr(sink, "num_shards", 0)

    def initialize_write(self):
        use_storage_options(self._storage)
        return self._sink.initialize_write()

    def open_writer(self, init_result, uid):
        use_storage_options(self._storage)
        return self._sink.open_writer(init_result, uid)

    def pre_finalize(self, init_result, writer_results):
        use_storage_options(self._storage)
        return self._sink.pre_finalize(init_result, writer_results)

    def finalize_write(self, init_result, writer_results, pre_finalize_result):
        use_storage_options(self._storage)
        return self._sink.finalize_write(init_result, writer_results, pre_finalize_result)

    def display_data(self):
        return self._sink.display_data()


class WriteResults(beam.PTransform):
    def __init__(self, directory: str, schema: pa.Schema, storage: dict | None = None):
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
