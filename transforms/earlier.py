"""Results of earlier runs in the same output folder: which URIs already have a row."""

from __future__ import annotations

import re

import apache_beam as beam

from .filesystems import ReadParquetFiles
from .manifests import BAD_LINE, bad_line_key, in_partition

_BAD_LINE = re.compile(rf"^{BAD_LINE}: (.*) line (\d+): ")


def done_key(row: dict, rescore_errors: bool):
    """The dedup key a result row covers, or nothing if the row is to be redone."""
    if row["uri"] is not None:
        if rescore_errors and row["error"]:
            return
        yield row["uri"]
    elif row["error"] and (match := _BAD_LINE.match(row["error"])):
        yield bad_line_key(match.group(1), int(match.group(2)))


class DoneKeys(beam.PTransform):
    """Parquet result files -> the keys they cover (read column-wise: ``uri`` and ``error``)."""

    def __init__(self, files: list[str], rescore_errors: bool = False, partition: tuple[int, int] = (0, 1),
                 storage: dict | None = None):
        super().__init__()
        self._files = files
        self._storage = storage
        self._rescore_errors = rescore_errors
        self._partition = partition

    def expand(self, pbegin):
        rescore, partition = self._rescore_errors, self._partition
        return (
            pbegin
            | "ReadEarlierResults" >> ReadParquetFiles(self._files, ["uri", "error"], self._storage)
            | "CoveredKeys" >> beam.FlatMap(done_key, rescore)
            | "ThisPart" >> beam.Filter(in_partition, partition)
        )
