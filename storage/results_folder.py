"""The output folder: one sub-folder per run, read together as one dataset (its names:
``storage/layout.py``). :class:`ResultsFolder` is what the commands that read or rewrite results
go through: its result files, chosen columns of every row as Arrow tables (the columns an older
nsfw-scan did not write filled in, :func:`filled`), and rewriting a file under the folder's lock.

``DIR/run-<UTC time>/part-*.parquet`` are the results of the runs that finished; a run that was
killed leaves Beam's ``beam-temp-*`` folder and the rows it had made durable (``_rows/``, see
``storage/rows.py``), which the next run salvages into a result file of that folder before
removing the rest. ``DIR/_SUMMARY.json`` is the latest run's summary, ``DIR/_LOCK`` the lock of
the run in progress (``storage/lock.py``). ``pyarrow.parquet.read_table(DIR)`` reads every run.

On object stores (s3://, gs://) folders are only prefixes of object names: a run folder is
listed and deleted as every object under ``<folder>/``; Beam's own ``delete`` of a folder path
would remove one (missing) object of that name, or only the folder's direct children.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ..model.errors import BAD_MANIFEST_LINE, ERROR_KINDS, UsageError
from ..model.pictures.views import YAHOO_VIEW
from .filesystems import FileSystems
from .layout import RESULT_GLOB, RUN_GLOB, RUN_PREFIX, SALVAGED_PART, is_result_file, is_template_folder
from .parquet_files import OutputDirError, match, read_schema, read_table, write_table
from .paths import shown
from .rows import salvage
from .schema import Column, output_schema

log = logging.getLogger(__name__)


def _is_local(path: str) -> bool:
    return "://" not in path


class NoResults(UsageError):
    """An output folder with no finished run's results in it."""


@dataclasses.dataclass(frozen=True)
class ResultsFolder:
    """The results of every finished run in an output folder (local or any Beam filesystem), for
    the commands that read or rewrite them: one result file at a time, so memory holds one."""

    path: str

    def files(self) -> list[str]:
        """The result files of every finished run; none is a :class:`NoResults` naming the folder."""
        files = result_files(self.path)
        if not files:
            raise NoResults(f"{shown(self.path)}: no results found (expected run-*/part-*.parquet from nsfw-scan run)")
        return files

    def tables(self, columns=None) -> Iterator[pa.Table]:
        """Each result file's rows, as :meth:`read` gives them."""
        for path in self.files():
            yield self.read(path, columns)

    def read(self, path: str, columns=None) -> pa.Table:
        """One result file: every column it has and every result column (``columns=None``), or
        ``columns`` only (those its rows need, read and nothing else); result columns the file
        lacks (an older nsfw-scan wrote it) are :func:`filled`, after its own columns."""
        if columns is None:
            table = read_table(path)
            return filled(table, [name for name in output_schema({}).names if name not in table.column_names])
        return with_columns(read_table(path, list(dict.fromkeys([*columns, *_sources(columns)]))), columns)

    def column_names(self) -> list[str]:
        """The columns of all result files together: each file's in order, then the result
        columns none of them has."""
        names: list[str] = []
        for path in self.files():
            names += [name for name in read_schema(path).names if name not in names]
        return names + [name for name in output_schema({}).names if name not in names]

    def rewrite(self, path: str, table: pa.Table, lock) -> None:
        """``path`` replaced by ``table`` whole (``files.write_table``), only while ``lock`` (the
        folder's ``OutputLock``) is still this command's."""
        lock.check()
        write_table(path, table)


# what :func:`filled` derives a missing column from, where the file has it
_DERIVED_FROM = {Column.ERROR_KIND: (Column.ERROR,), Column.SOURCE_MANIFEST: (Column.ERROR,),
                 Column.SOURCE_LINE: (Column.ERROR,),
                 Column.YAHOO_PDQ: (Column.PDQ, Column.PDQ_QUALITY, Column.VIEW),
                 Column.YAHOO_PDQ_QUALITY: (Column.PDQ, Column.PDQ_QUALITY, Column.VIEW)}
# how ``results.bad_line_error`` words a malformed manifest line's error
_BAD_LINE = rf"^{BAD_MANIFEST_LINE}: (?P<manifest>.*) line (?P<line>\d+): "


def _sources(columns) -> list[str]:
    return [source for name in columns for source in _DERIVED_FROM.get(name, ())]


def with_columns(table: pa.Table, columns) -> pa.Table:
    """``table`` with exactly ``columns``, in their order: those it lacks :func:`filled`."""
    return filled(table, [name for name in columns if name not in table.column_names]).select(list(columns))


def filled(table: pa.Table, missing) -> pa.Table:
    """``table`` of a result file an older nsfw-scan wrote, with the result columns ``missing``
    appended: ``error_kind`` from the start of ``error`` (which has always begun with it), the
    source of a malformed manifest line from its message, ``yahoo_pdq`` from ``pdq`` (which was
    Yahoo's view's hash then; ``pdq`` stays only where Yahoo's view gave the score), the rest
    empty. Derived only from columns ``table`` has, as rows read with them."""
    if not missing:
        return table
    types = {field.name: field.type for field in output_schema({})}
    n, has = table.num_rows, set(table.column_names)
    error = table[Column.ERROR] if Column.ERROR in has else pa.nulls(n, pa.string())
    values = {name: pa.nulls(n, types[name]) for name in missing}
    if Column.ERROR_KIND in values:
        kind = pc.struct_field(pc.extract_regex(error, r"^(?P<kind>[^:]*)"), [0])
        values[Column.ERROR_KIND] = pc.if_else(pc.is_in(kind, pa.array(sorted(ERROR_KINDS))), kind, None)
    if Column.SOURCE_MANIFEST in values:
        source = pc.extract_regex(error, _BAD_LINE)
        values[Column.SOURCE_MANIFEST] = pc.struct_field(source, [0])
        line = pc.cast(pc.struct_field(source, [1]), pa.int64())
        values[Column.SOURCE_LINE] = pc.coalesce(line, table[Column.SOURCE_LINE]) if Column.SOURCE_LINE in has else line
    if Column.YAHOO_PDQ in values and Column.PDQ in has:
        pdq = table[Column.PDQ]
        quality = table[Column.PDQ_QUALITY] if Column.PDQ_QUALITY in has else pa.nulls(n, pa.int32())
        values[Column.YAHOO_PDQ] = pdq
        before = table[Column.YAHOO_PDQ_QUALITY] if Column.YAHOO_PDQ_QUALITY in has else pa.nulls(n, pa.int32())
        values[Column.YAHOO_PDQ_QUALITY] = pc.if_else(pc.is_valid(pdq), quality.cast(pa.int32()), before.cast(pa.int32()))
        if Column.VIEW in has:  # the flagged view's hash was not kept
            other = pc.fill_null(pc.and_(pc.is_valid(pdq), pc.not_equal(table[Column.VIEW], YAHOO_VIEW)), False)
            table = table.set_column(table.schema.get_field_index(Column.PDQ), Column.PDQ,
                                     pc.if_else(other, pa.scalar(None, pdq.type), pdq))
            if Column.PDQ_QUALITY in has:
                table = table.set_column(table.schema.get_field_index(Column.PDQ_QUALITY), Column.PDQ_QUALITY,
                                         pc.if_else(other, pa.scalar(None, quality.type), quality))
    for name, value in values.items():
        value = value.cast(types[name])
        if name in has:
            table = table.set_column(table.schema.get_field_index(name), name, value)
        else:
            table = table.append_column(pa.field(name, types[name]), value)
    return table


def result_files(output: str) -> list[str]:
    """Result files of every finished run in ``output``."""
    return match(FileSystems.join(output, RUN_GLOB, RESULT_GLOB))


def run_result_files(run_folder: str) -> list[str]:
    return match(FileSystems.join(run_folder, RESULT_GLOB))


@dataclasses.dataclass(frozen=True)
class Written:
    """What a run's result files hold: their rows by decision, and error rows by kind."""

    decisions: Counter
    errors: Counter

    @property
    def rows(self) -> int:
        return sum(self.decisions.values())


def written_rows(run_folder: str) -> Written:
    """The rows in a run folder's result files, counted from the files themselves (their
    ``decision`` and ``error_kind`` columns only): what a runner that retried work (and counted
    it twice in its metrics) really wrote."""
    decisions, errors = Counter(), Counter()
    for path in run_result_files(run_folder):
        table = read_table(path, [Column.DECISION, Column.ERROR_KIND])
        decisions.update(table[Column.DECISION].to_pylist())
        errors.update(table[Column.ERROR_KIND].drop_null().to_pylist())
    return Written(decisions, errors)


def run_folders(output: str) -> dict[str, bool]:
    """Run folders -> whether the run finished (has result files directly in it)."""
    if _is_local(output):  # local folders can be listed, empty ones included
        if not os.path.isdir(output):
            return {}
        return {
            os.path.join(output, entry.name): any(map(is_result_file, os.listdir(entry.path)))
            for entry in os.scandir(output) if entry.is_dir() and entry.name.startswith(RUN_PREFIX)
        }
    base = output.rstrip("/") + "/"
    runs: dict[str, bool] = {}
    for path in match(FileSystems.join(output, RUN_GLOB, "**")):  # one listing of every run's objects
        folder, _, rest = path[len(base):].partition("/")
        folder = base + folder
        runs[folder] = runs.get(folder, False) or (is_result_file(rest) and "/" not in rest)
    return runs


def remove_folders(folders: list[str]) -> int:
    """Delete whole folders (with everything under them, on object stores too); returns how
    many files went. Raises :class:`OutputDirError` if anything is left behind."""
    removed = 0
    for folder in sorted(folders):
        if _is_local(folder):
            removed += sum(len(files) for _, _, files in os.walk(folder))
            FileSystems.delete([folder])
            left = os.path.exists(folder)
        else:
            files = match(folder.rstrip("/") + "/**")
            if files:
                FileSystems.delete(files)
            removed += len(files)
            left = bool(match(folder.rstrip("/") + "/**"))
        if left:
            raise OutputDirError(f"{folder}: could not be removed completely")
    return removed


def finish_killed_runs(output: str, among: list[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """Folders of runs that did not finish (of ``among``, or all): the rows each had made durable
    become its result file (one row per URI), the rest of it (Beam's temporary files) goes; a
    folder with no such rows goes whole. Returns ({folder: rows salvaged}, [folders removed]).
    Only called while holding the output folder's lock, so no live run's folder is among them; a
    Dataflow template's folder (:func:`unfinished_templates`), which its launches write without
    the lock, is never touched."""
    salvaged, removed = {}, []
    unfinished = [f for f, finished in run_folders(output).items()
                  if not finished and not is_template_folder(f) and (among is None or f in among)]
    for folder in sorted(unfinished):
        kept = salvage(folder)
        if kept:
            salvaged[folder] = kept
            _clear_except(folder, SALVAGED_PART)
        else:
            remove_folders([folder])
            removed.append(folder)
    return salvaged, removed


def unfinished_templates(output: str) -> list[str]:
    """Folders of Dataflow templates' launches without results yet: a launch may be writing one
    (it takes no lock), or may have died; nothing here can tell, so they are left as they are."""
    return sorted(f for f, finished in run_folders(output).items() if not finished and is_template_folder(f))


def _clear_except(folder: str, name: str) -> None:
    """Delete everything in ``folder`` but the file ``name`` directly in it."""
    if _is_local(folder):
        for entry in os.scandir(folder):
            if entry.name != name:
                shutil.rmtree(entry.path) if entry.is_dir() else os.remove(entry.path)
        return
    others = [p for p in match(folder.rstrip("/") + "/**") if p != FileSystems.join(folder, name)]
    if others:
        FileSystems.delete(others)


@dataclasses.dataclass
class EarlierRows:
    """What a run tells of the rows earlier runs left in the folder (:func:`earlier_rows`)."""

    errors: dict[str, int]  # error rows of the kinds asked for, by kind
    decided_at: dict[tuple[float, float] | None, int]  # scored rows by (safe_below, nsfw_from); None: not recorded


def earlier_rows(files: list[str], kinds) -> EarlierRows:
    """Over the result files ``files``: how many rows are errors of each of ``kinds`` (from the
    ``error`` column, ``"<kind>: message"``, which every version has written), and how many
    scored rows were decided at each pair of thresholds (``None`` for rows of versions that did
    not record them). Reads each file once, those columns only."""
    errors = dict.fromkeys(kinds, 0)
    decided: Counter = Counter()
    for path in files:
        table = read_table(path, [Column.ERROR, Column.SCORE, Column.SAFE_BELOW, Column.NSFW_FROM], present_only=True)
        for error in table[Column.ERROR].drop_null().to_pylist():
            kind = error.split(":", 1)[0]
            if kind in errors:
                errors[kind] += 1
        scored = table.filter(pc.is_valid(table[Column.SCORE]))
        if Column.SAFE_BELOW not in scored.column_names:
            decided[None] += scored.num_rows
            continue
        for safe, nsfw in zip(scored[Column.SAFE_BELOW].to_pylist(), scored[Column.NSFW_FROM].to_pylist()):
            decided[None if safe is None else (safe, nsfw)] += 1
    return EarlierRows({kind: n for kind, n in errors.items() if n}, {k: n for k, n in decided.items() if n})


def drop_superseded_errors(earlier: list[str], new: list[str]) -> int:
    """After ``--rescore-errors``: remove earlier error rows whose URI the new run has redone,
    so each URI keeps exactly one row. Holds only the earlier runs' error URIs in memory, and
    rewrites only the files that hold such rows."""
    failed_in: dict[str, set[str]] = {}
    for path in earlier:
        table = read_table(path, [Column.URI, Column.ERROR])
        failed = {u for u, e in zip(table[Column.URI].to_pylist(), table[Column.ERROR].to_pylist()) if u and e}
        if failed:
            failed_in[path] = failed
    if not failed_in:
        return 0
    failed = set().union(*failed_in.values())
    redone = set()
    for path in new:
        redone.update(u for u in read_table(path, [Column.URI])[Column.URI].to_pylist() if u in failed)
    dropped = 0
    for path, failed in failed_in.items():
        if not failed & redone:
            continue
        table = read_table(path)
        keep = pc.invert(pc.fill_null(pc.is_in(table[Column.URI], value_set=pa.array(sorted(redone), pa.string())), False))
        kept = table.filter(keep)
        dropped += table.num_rows - kept.num_rows
        write_table(path, kept)
    return dropped
