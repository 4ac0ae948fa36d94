"""Reading Parquet files (earlier runs' results) with Beam, the storage options set first."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.parquetio import ReadAllFromParquetBatched

from .storage_step import ParDoWithStorage, UseStorage


class ReadParquetFiles(beam.PTransform):
    """Beam's ``ReadAllFromParquetBatched`` over a list of files (``columns`` of their rows, a
    table at a time), with the storage options set in the stages that list them and read them
    (a shuffle between the two splits them)."""

    def __init__(self, files: list[str], columns: list[str]):
        super().__init__()
        self._files = files
        self._columns = columns

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._files)
            | "StorageForListing" >> ParDoWithStorage(UseStorage())
            | "ReadParquet" >> ReadAllFromParquetBatched(columns=self._columns)
            | "StorageForReading" >> ParDoWithStorage(UseStorage())
        )
