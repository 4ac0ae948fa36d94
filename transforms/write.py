"""Writing result rows as Parquet with the explicit output schema.

Beam's file sinks write into a temporary folder and rename into place only when the whole
run succeeded, so ``part-*.parquet`` files never appear half-written."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

PART_PREFIX = "part"


class WriteResults(beam.PTransform):
    def __init__(self, directory: str, schema: pa.Schema):
        super().__init__()
        self._directory = directory
        self._schema = schema

    def expand(self, rows):
        return rows | "WriteParquet" >> beam.io.WriteToParquet(
            FileSystems.join(self._directory, PART_PREFIX),
            self._schema,
            file_name_suffix=".parquet",
            codec="snappy",
        )
