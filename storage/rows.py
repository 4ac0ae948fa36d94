"""Rows made durable while a run goes, and the salvage of a killed run's rows.

While a run goes, each worker writes the rows it finished as small Parquet files under
``<run folder>/_rows/`` (``transforms/write.py``, ``KeepRows``). Each file appears whole: a local
one is written under a temporary name and renamed, an object in a bucket is created whole. A
run that finishes removes them (its ``part-*.parquet`` files hold every row, exactly once). A run
that was killed keeps them, and the next run on the folder salvages them before it reads the
manifests: one row per URI (a bundle the runner retried wrote its rows twice) into one result
file of that run's folder, which then counts as a run that finished with what it had.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid

import pyarrow as pa
import pyarrow.compute as pc

from .filesystems import FileSystems
from .layout import ROWS_DIR, ROWS_PREFIX, SALVAGED_PART
from .parquet_files import match, read_table, write_table
from .schema import Column

log = logging.getLogger(__name__)


def write_rows(run_folder: str, rows: list[dict], schema: pa.Schema) -> str:
    """Write ``rows`` as one new durable row file of ``run_folder``; returns its path."""
    path = FileSystems.join(run_folder, ROWS_DIR, f"{ROWS_PREFIX}{uuid.uuid4().hex}.parquet")
    write_table(path, pa.Table.from_pylist(rows, schema))
    return path


def row_files(run_folder: str) -> list[str]:
    return match(FileSystems.join(run_folder, ROWS_DIR, f"{ROWS_PREFIX}*.parquet"))


def _read(path: str) -> pa.Table | None:
    try:
        return read_table(path)
    except Exception as exc:  # a file a dying run left damaged: its rows are scored again
        log.warning("%s: not salvaged (%s: %s); its rows are scored again", path, type(exc).__name__, exc)
        return None


def _one_row_per_key(table: pa.Table) -> pa.Table:
    """The first row of each URI (a malformed manifest line, which has none, by its source)."""
    source = pc.binary_join_element_wise(
        pc.fill_null(table[Column.SOURCE_MANIFEST], ""),
        pc.cast(pc.fill_null(table[Column.SOURCE_LINE], -1), pa.string()), "\n")
    uri = table[Column.URI]
    key = pc.if_else(pc.is_null(uri), pc.binary_join_element_wise("\0", source, ""), uri)
    first = pa.table({"key": key, "i": pa.array(range(table.num_rows), pa.int64())}).group_by("key").aggregate(
        [("i", "min")])["i_min"]
    return table.take(first.take(pc.sort_indices(first)))


def salvage(run_folder: str) -> int:
    """A killed run's durable rows -> ``<run_folder>/part-salvaged.parquet``, one row per URI,
    and its row files removed; returns the rows kept (0: nothing to salvage, nothing written)."""
    files = row_files(run_folder)
    tables = [t for t in map(_read, files) if t is not None and t.num_rows]
    if tables:
        table = _one_row_per_key(pa.concat_tables(tables, promote_options="default"))
        write_table(FileSystems.join(run_folder, SALVAGED_PART), table)
    remove_rows(run_folder, files)
    return table.num_rows if tables else 0


def remove_rows(run_folder: str, files: list[str] | None = None) -> None:
    """Remove ``run_folder``'s durable row files (once its results are whole)."""
    files = row_files(run_folder) if files is None else files
    if files:
        FileSystems.delete(files)
    folder = FileSystems.join(run_folder, ROWS_DIR)
    if "://" not in folder and os.path.isdir(folder):
        shutil.rmtree(folder)  # with any file a killed writer left half-written
