"""Results of earlier runs in the same output folder: which URIs already have a row."""

from __future__ import annotations

import apache_beam as beam

from ..model.decision import NOT_SCORED
from ..storage.results_folder import with_columns
from ..storage.schema import DONE_KEY_COLUMNS, Column
from .dedup import in_partition
from .elements import bad_line_key
from .read_parquet import ReadParquetFiles


class ReadEarlierResults(beam.PTransform):
    """Result files of earlier runs -> their rows, ``columns`` only; those a file lacks because
    an older nsfw-scan wrote it are filled in (``storage.results_folder.with_columns``)."""

    def __init__(self, files: list[str], columns: list[str]):
        super().__init__()
        self._files = files
        self._columns = columns

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadFiles" >> ReadParquetFiles(self._files, self._columns)
            | "OlderFiles" >> beam.FlatMap(_rows, self._columns)
        )


def _rows(table, columns: list[str]) -> list[dict]:
    """A table of a result file's rows, as rows with every one of ``columns``."""
    return with_columns(table, columns).to_pylist()


def done_key(row: dict, rescore_errors: bool):
    """The dedup key a result row covers, or nothing if the row is to be redone. A malformed
    manifest line (no URI) is known by its source columns."""
    if row[Column.URI] is not None:
        if rescore_errors and row[Column.DECISION] == NOT_SCORED:
            return
        yield row[Column.URI]
    elif row[Column.SOURCE_MANIFEST] is not None:
        yield bad_line_key(row[Column.SOURCE_MANIFEST], row[Column.SOURCE_LINE])


class DoneKeys(beam.PTransform):
    """Parquet result files -> the keys they cover (read column-wise)."""

    def __init__(self, files: list[str], rescore_errors: bool = False, partition: tuple[int, int] = (0, 1)):
        super().__init__()
        self._files = files
        self._rescore_errors = rescore_errors
        self._partition = partition

    def expand(self, pbegin):
        rescore, partition = self._rescore_errors, self._partition
        return (
            pbegin
            | "ReadEarlierResults" >> ReadEarlierResults(self._files, list(DONE_KEY_COLUMNS))
            | "CoveredKeys" >> beam.FlatMap(done_key, rescore)
            | "ThisPart" >> beam.Filter(in_partition, partition)
        )
