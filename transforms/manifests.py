"""Manifests: the lists of image URIs a job scores.

Formats, chosen by file name (``.gz`` compressed text is read transparently):

- plain text (any other name): one URI per line; blank lines and ``#`` comments are skipped;
- ``.csv`` / ``.tsv``: a header row; the URI column is ``uri`` unless configured otherwise;
- ``.jsonl`` / ``.ndjson``: one JSON object per line, with the URI under the same key;
- ``.parquet``: a column holding the URI.

Every other column passes through to the output unchanged (columns are taken from the CSV
header, the first JSON object, or the Parquet schema; CSV and JSON values are strings, Parquet
values keep their type). Relative URIs resolve against the manifest's own folder. A byte-order
mark at the start of a text manifest (Excel's "CSV UTF-8", Notepad) is dropped. A manifest
pattern that matches nothing or names a folder, and a manifest that cannot be opened, fail
before the pipeline starts; a compressed manifest found damaged while it is read stops the
job with a :class:`ManifestError` naming it; a malformed line becomes an entry with an error
that names the manifest and the line.

Every physical line is accounted for (counters of :data:`LINE_COUNTERS`): it is a header, blank
or a comment, the first line of an entry, or a further line of a CSV record whose quoted field
spans lines. A quote that never closes, or a quoted field that swallows following lines into
the URI or into a record of the wrong width, costs only its own line: that line becomes a bad
line and reading goes on at the next one. No content stops the job: over-long lines, bytes
that are not UTF-8 and JSON nested too deep are bad lines too.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from ..model.signatures import binary_kind
from ..storage.options import StorageOptions
from ..storage.paths import shown
from ..storage.schema import RESERVED, Column
from . import metrics
from .metrics import CONTINUED, ENTRIES, HEADERS, LINE_COUNTERS, LINES, SKIPPED

DEFAULT_URI_COLUMN = Column.URI  # a manifest's column of URIs, unless manifest.uri_column names another

MAX_LINE_CHARS = 1 << 20  # a longer line is a bad line (the rest of it is skipped, never held)
MAX_RECORD_CHARS = 1 << 17  # a quoted CSV field may span lines up to this many characters
SNIFF_BYTES = 1024  # a text manifest's first bytes, read to tell an image or other binary file given by mistake


class ManifestError(ValueError):
    """A manifest that cannot be used at all; the message names it and says what to do."""


def manifest_format(path: str) -> tuple[str, bool]:
    """(format, gzip-compressed) from the file name."""
    name = path.rsplit("/", 1)[-1].lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[:-3]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    fmt = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "jsonl": "jsonl", "ndjson": "jsonl",
           "parquet": "parquet", "pq": "parquet"}.get(ext, "text")
    if fmt == "parquet" and compressed:
        raise ManifestError(f"{path}: gzip-compressed Parquet is not supported; Parquet compresses itself")
    return fmt, compressed


def _open_text(path: str, compressed: bool):
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if compressed:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    # utf-8-sig: a leading byte-order mark is dropped (and none is required)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _unreadable(path: str, exc: BaseException) -> ManifestError:
    """What went wrong reading a manifest, in one line that names it."""
    if isinstance(exc, IsADirectoryError):
        why = "is a folder, not a manifest file; give the files (e.g. a glob like 'DIR/*.csv')"
    elif isinstance(exc, PermissionError):
        why = "cannot be read (permission denied)"
    elif isinstance(exc, FileNotFoundError):
        why = "no longer exists"
    elif isinstance(exc, EOFError):
        why = "the compressed manifest is truncated (it ends before the end of its gzip stream)"
    elif isinstance(exc, gzip.BadGzipFile) and "Not a gzipped file" in str(exc):
        why = "is not gzip-compressed although its name ends in .gz (rename it or compress it)"
    elif isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        why = f"the compressed manifest is damaged ({exc})"
    elif isinstance(exc, pa.ArrowException):
        why = f"is not a readable Parquet file ({exc})"
    else:
        why = f"cannot be read ({type(exc).__name__}: {exc})"
    return ManifestError(f"manifest {path}: {why}")


READ_ERRORS = (OSError, EOFError, zlib.error, pa.ArrowException)


@dataclasses.dataclass(frozen=True)
class ManifestPlan:
    """What the pipeline needs to know of its manifests before it starts."""

    files: tuple[str, ...]
    columns: dict[str, pa.DataType]  # pass-through columns and their output types
    uri_column: str = DEFAULT_URI_COLUMN


def _header_columns(path: str, uri_column: str) -> dict[str, pa.DataType]:
    try:
        return _read_header(path, uri_column)
    except READ_ERRORS as exc:
        raise _unreadable(path, exc) from None


def _read_header(path: str, uri_column: str) -> dict[str, pa.DataType]:
    fmt, compressed = manifest_format(path)
    if fmt == "text":
        return {}
    if fmt == "parquet":
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            schema = pq.read_schema(f)
        names = schema.names
        types = {field.name: field.type for field in schema}
    else:
        with _open_text(path, compressed) as f:
            if fmt == "jsonl":
                first = next((line for line in f if line.strip()), "{}")
                try:
                    record = json.loads(first)
                except ValueError:
                    raise ManifestError(f"{path}: the first line is not JSON; expected one JSON object per line") from None
                names = list(record) if isinstance(record, dict) else []
            else:
                header = next((r for r in _csv_records(f, fmt) if r.skipped is None), None)
                names = header.values if header is not None and header.error is None else []
        types = {name: pa.string() for name in names}
    if uri_column not in names:
        raise ManifestError(
            f"{path}: no {uri_column!r} column (found {names[:20]}); name the URI column with "
            f"--uri-column, or use a plain-text manifest with one URI per line"
        )
    columns = {name: dtype for name, dtype in types.items() if name != uri_column}
    clashes = sorted(set(columns) & RESERVED)
    if clashes:
        raise ManifestError(f"{path}: columns {clashes} clash with output columns of the same name; rename them")
    return columns


def _not_text(path: str) -> str | None:
    """What a manifest that should be text (plain, CSV, TSV, JSON Lines) is instead, from its first
    bytes (decompressed for ``.gz``): e.g. ``"a JPEG image"``; ``None`` for text, Parquet, or a
    file that cannot be read (reading it reports that)."""
    fmt, compressed = manifest_format(path)
    if fmt == "parquet":
        return None
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            head = gzip.GzipFile(fileobj=raw, mode="rb").read(SNIFF_BYTES) if compressed else raw.read(SNIFF_BYTES)
    except (*READ_ERRORS, gzip.BadGzipFile):
        return None
    return binary_kind(head)


def _not_a_manifest(pattern: str, matched: list[str], path: str, what: str) -> ManifestError:
    """The error for a manifest pattern that matches a file that is not text: what it is, and
    how to make a manifest or score images directly."""
    where = (f"manifest {shown(path)}" if len(matched) == 1 else
             f"manifest pattern {shown(pattern)!r} matches {len(matched)} files, and {shown(path)}")
    if what == "UTF-16 text":
        return ManifestError(f"{where}: is UTF-16 text; save it as UTF-8 (manifests are UTF-8 text)")
    return ManifestError(
        f"{where}: is {what}, not a manifest. A manifest lists the URIs to score, one per line (or CSV, "
        f"JSON Lines, Parquet): make one, e.g. find DIR -type f > uploads.txt, and give --manifest uploads.txt; "
        f"or score a few files directly with nsfw-scan score FILE ...")


def _is_folder(path: str) -> bool:
    """Folders are never manifests (object stores have no folders, only names ending in /)."""
    return path.endswith("/") or ("://" not in path and os.path.isdir(path))


def plan_manifests(patterns: list[str], uri_column: str = DEFAULT_URI_COLUMN) -> ManifestPlan:
    """Expand the patterns, check that every manifest opens, and read their headers. Fails
    early, naming the pattern or the file."""
    files: list[str] = []
    for pattern in patterns:
        if _is_folder(pattern):
            raise ManifestError(f"manifest {pattern}: is a folder, not a manifest file; give the files "
                                f"(e.g. a glob like '{pattern.rstrip('/')}/*.csv')")
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:
            raise ManifestError(f"manifest {pattern}: {exc}") from None
        # Beam's local match skips folders that a glob matches, or lists the files inside them
        folders = [m.path for m in matched if _is_folder(m.path)]
        if "://" not in pattern:
            folders += [path for path in glob.glob(pattern) if os.path.isdir(path)]
        if folders:
            raise ManifestError(f"manifest pattern {pattern!r} matches the folder {folders[0]}; "
                                f"make the pattern match manifest files only")
        if not matched:
            raise ManifestError(f"no manifest found at {pattern!r}; check the path or glob pattern")
        paths = sorted(m.path for m in matched)
        for path in paths:
            if (what := _not_text(path)) is not None:
                raise _not_a_manifest(pattern, paths, path, what)
        files += paths
    files = list(dict.fromkeys(files))
    columns: dict[str, pa.DataType] = {}
    for path in files:
        for name, dtype in _header_columns(path, uri_column).items():
            if name in columns and columns[name] != dtype:
                dtype = pa.string()  # the same column typed differently in two manifests
            columns[name] = dtype
    plan = ManifestPlan(tuple(files), columns, uri_column)
    reader = ReadManifest(plan)
    # every manifest opens and starts well (the rest is checked as the pipeline reads it)
    firsts = [next(iter(reader.lines(path)), None) for path in files]
    if not any(firsts):
        raise ManifestError(f"the manifests at {', '.join(map(repr, patterns))} list no URIs; nothing to do")
    return plan


def resolve(uri: str, manifest: str) -> str:
    """Relative URIs are taken from the manifest's folder; local paths are normalised (``.``,
    ``..`` and repeated separators), so that one file has one URI however a manifest names it."""
    if "://" in uri:
        return uri
    if not os.path.isabs(uri):
        uri = FileSystems.join(FileSystems.split(manifest)[0], uri)
        if "://" in uri:  # a remote manifest's folder: its names are the store's
            return uri
    return os.path.normpath("/" + uri.lstrip("/")) if uri.startswith("//") else os.path.normpath(uri)


def _as_type(value, dtype: pa.DataType):
    if value is None or not pa.types.is_string(dtype) or isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def in_partition(key: str, partition: tuple[int, int]) -> bool:
    """Whether a dedup key belongs to part i of K (a stable hash: the same in every process)."""
    index, count = partition
    return count == 1 or zlib.crc32(key.encode("utf-8", "surrogatepass")) % count == index


def bad_line_key(manifest: str, line: int) -> str:
    return f"\0{manifest}:{line}"


class Record(NamedTuple):
    """What a manifest reader found at ``line``: ``span`` physical lines, either ``skipped``
    (``HEADERS`` or ``SKIPPED``) or one entry's URI and values, or why the line is unusable."""

    line: int
    span: int = 1
    uri: object = None
    values: object = None
    error: str | None = None
    skipped: str | None = None


def _physical_lines(f) -> Iterator[tuple[int, str | None]]:
    """``(number, text)`` per physical line, from 1; ``text`` is None for a line over
    ``MAX_LINE_CHARS`` (read on to its end, never held whole)."""
    number = 0
    while True:
        text = f.readline(MAX_LINE_CHARS + 1)
        if not text:
            return
        number += 1
        if len(text) > MAX_LINE_CHARS:
            while text and not text.endswith(("\n", "\r")):
                text = f.readline(MAX_LINE_CHARS)
            yield number, None
        else:
            yield number, text


def _too_long(line: int) -> Record:
    return Record(line, error=f"the line is longer than {MAX_LINE_CHARS} characters")


def _unusable(line: int, text: str | None) -> Record | None:
    """The record of a physical line with nothing to read in it (over the length limit, or
    blank), the same in every line-based format; ``None`` for any other line."""
    if text is None:
        return _too_long(line)
    if not text.strip():
        return Record(line, skipped=SKIPPED)
    return None


def _csv_records(f, fmt: str, uri_column: str | None = None) -> Iterator[Record]:
    """A CSV/TSV file's records, ``values`` being the list of fields; with ``uri_column``, the
    first is the header (``skipped`` = ``HEADERS``) and the others are read against it. A record
    is one physical line, or several when a quoted field spans lines (as Excel writes notes with
    line breaks). Such a span is taken only when its quotes close within ``MAX_RECORD_CHARS``,
    the record has the header's width and its URI has no line break; otherwise its first line
    alone is a bad line and reading goes on at the line after it."""
    delimiter = "," if fmt == "csv" else "\t"
    width = uri_field = None
    source = _physical_lines(f)
    pending: collections.deque = collections.deque()  # lines read ahead, not yet consumed
    while True:
        item = pending.popleft() if pending else next(source, None)
        if item is None:
            return
        line, text = item
        if (unusable := _unusable(line, text)) is not None:
            yield unusable
            continue
        if '"' not in text:  # no quote: the fields are what lies between delimiters (as csv reads them)
            fields = text.rstrip("\r\n").split(delimiter)
            if uri_column is not None and width is None:
                width = len(fields)
                uri_field = fields.index(uri_column) if uri_column in fields else None
                yield Record(line, values=fields, skipped=HEADERS)
            else:
                yield Record(line, values=fields)
            continue
        pending.appendleft(item)  # read on from here, as far as the quote reaches
        fed, ran_out = [0], [False]

        def feed():
            size = 0
            while True:
                if fed[0] == len(pending):
                    nxt = next(source, None)
                    if nxt is None:
                        ran_out[0] = True
                        return
                    pending.append(nxt)
                piece = pending[fed[0]][1]
                size += len(piece) if piece is not None else MAX_RECORD_CHARS + 1
                if fed[0] > 0 and (piece is None or size > MAX_RECORD_CHARS):
                    ran_out[0] = True
                    return
                fed[0] += 1
                yield piece

        try:
            fields = next(csv.reader(feed(), delimiter=delimiter), None)
            error = None
        except csv.Error as exc:
            fields, error = None, f"not readable as {fmt.upper()} ({exc})"
        span = fed[0]
        if error is None and (ran_out[0] or fields is None):
            error = "a quote opens a field that does not close"
        elif error is None and span > 1 and width is not None and len(fields) != width:
            error = f"a quote opens a field that does not close on this line, and the {span} lines up to " \
                    f"where it closes have {len(fields)} fields, not {width}"
        elif error is None and span > 1 and uri_field is not None and uri_field < len(fields) \
                and ("\n" in fields[uri_field] or "\r" in fields[uri_field]):
            error = "a quote opens the URI field and does not close on this line"
        if error is not None:
            pending.popleft()  # this line alone is bad; the next one starts afresh
            yield Record(line, error=error)
            continue
        for _ in range(span):
            pending.popleft()
        if uri_column is not None and width is None:
            width = len(fields)
            uri_field = fields.index(uri_column) if uri_column in fields else None
            yield Record(line, span, values=fields, skipped=HEADERS)
        else:
            yield Record(line, span, values=fields)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One manifest line: a URI with its pass-through columns, or why the line is unusable."""

    uri: str | None
    columns: dict
    manifest: str  # the manifest's path or URI, as matched
    line: int  # line (or Parquet row) number, from 1
    error: str | None = None  # what is wrong with the line (error kind bad_manifest_line)
    duplicates: int = 0  # other manifest lines naming the same URI (set by NewEntries)

    @property
    def dedup_key(self) -> str:
        """Entries with the same URI are one image; each unusable line stays on its own."""
        return self.uri if self.uri is not None else bad_line_key(self.manifest, self.line)

    @property
    def position(self) -> tuple[str, int]:
        return self.manifest, self.line


def entry_of(row: dict) -> Entry:
    """The entry a row of a URI was made from (the inverse of ``results.base_row``), for steps
    that make a row again from the start."""
    columns = {name: value for name, value in row.items() if name not in RESERVED}
    return Entry(row[Column.URI], columns, row[Column.SOURCE_MANIFEST], row[Column.SOURCE_LINE],
                 duplicates=row[Column.DUPLICATES])


class ReadManifest(beam.DoFn):
    """A manifest path -> its entries, streamed (the manifest is never held in memory)."""

    def __init__(self, plan: ManifestPlan, count_rows: bool = True, storage: StorageOptions | None = None):
        self._columns = plan.columns
        self._uri_column = plan.uri_column
        self._count_rows = count_rows  # a partitioned run reads the manifests once per part
        self._storage = storage  # see storage/options.py

    def setup(self):
        if self._storage is not None:
            self._storage.apply()
        self._counters = {name: metrics.counter(name) for name in LINE_COUNTERS}

    def records(self, path: str) -> Iterator[Record]:
        """Every physical line (or Parquet row) of the manifest, as :class:`Record` s. A manifest
        that cannot be read on (e.g. a truncated ``.gz``) raises :class:`ManifestError`."""
        fmt, compressed = manifest_format(path)
        reader = {"text": self._text, "csv": self._delimited, "tsv": self._delimited,
                  "jsonl": self._jsonl, "parquet": self._parquet}[fmt]
        try:
            yield from reader(path, fmt, compressed)
        except READ_ERRORS as exc:
            raise _unreadable(path, exc) from None

    def lines(self, path: str):
        """``(line number, uri, values, error)`` for each line that is not blank or a comment."""
        for record in self.records(path):
            if record.skipped is None:
                yield record.line, record.uri, record.values or {}, record.error

    def _count(self, name: str, n: int = 1) -> None:
        if self._count_rows and n:
            self._counters[name].inc(n)

    def process(self, path: str) -> Iterator[Entry]:
        for record in self.records(path):
            line, uri, values, error = record.line, record.uri, record.values or {}, record.error
            self._count(LINES, record.span)
            if record.skipped is not None:
                self._count(record.skipped, record.span)
                continue
            self._count(ENTRIES)
            self._count(CONTINUED, record.span - 1)
            if error is None and (not isinstance(uri, str) or not uri.strip()):
                error = f"no URI in column {self._uri_column!r}" if uri is None or isinstance(uri, str) else \
                    f"the URI is not a string: {uri!r}"
            columns = {c: _as_type(values.get(c), t) for c, t in self._columns.items()}
            if error:
                yield Entry(None, columns, path, line, error)
            else:
                yield Entry(resolve(uri.strip(), path), columns, path, line)

    def _text(self, path, fmt, compressed):
        with _open_text(path, compressed) as f:
            for line, text in _physical_lines(f):
                if (unusable := _unusable(line, text)) is not None:
                    yield unusable
                    continue
                text = text.strip()
                if text.startswith("#"):
                    yield Record(line, skipped=SKIPPED)
                    continue
                error = "not valid UTF-8 text" if "\ufffd" in text else None
                yield Record(line, uri=text, error=error)

    def _delimited(self, path, fmt, compressed):
        with _open_text(path, compressed) as f:
            header, uri_column = None, self._uri_column
            for record in _csv_records(f, fmt, uri_column):
                fields = record.values
                if record.skipped == HEADERS:
                    header = fields
                    yield Record(record.line, record.span, skipped=HEADERS)
                elif record.skipped or record.error:
                    yield record
                elif not "".join(fields).strip():
                    yield Record(record.line, record.span, skipped=SKIPPED)
                elif len(fields) != len(header):
                    yield Record(record.line, record.span, error=f"expected {len(header)} fields, got {len(fields)}")
                else:
                    values = dict(zip(header, fields))
                    yield Record(record.line, record.span, values[uri_column], values)

    def _jsonl(self, path, fmt, compressed):
        with _open_text(path, compressed) as f:
            for line, text in _physical_lines(f):
                if (unusable := _unusable(line, text)) is not None:
                    yield unusable
                    continue
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    yield Record(line, error=f"not JSON ({exc})")
                    continue
                except RecursionError:
                    yield Record(line, error="not JSON (nested too deeply)")
                    continue
                if not isinstance(record, dict):
                    yield Record(line, error="not a JSON object")
                    continue
                yield Record(line, uri=record.get(self._uri_column), values=record)

    def _parquet(self, path, fmt, compressed):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            row = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=8192):
                for record in batch.to_pylist():
                    row += 1
                    yield Record(row, uri=record.get(self._uri_column), values=record)


class _FirstEntry(beam.CombineFn):
    """Per URI: how many manifest lines name it, the first of them (by manifest, line), and
    whether an earlier run already has its row (marked by a ``None`` input)."""

    def create_accumulator(self):
        return 0, None, False

    def add_input(self, accumulator, entry):
        count, first, done = accumulator
        if entry is None:
            return count, first, True
        return count + 1, entry if first is None or entry.position < first.position else first, done

    def merge_accumulators(self, accumulators):
        count, first, done = 0, None, False
        for n, entry, d in accumulators:
            count, done = count + n, done or d
            if entry is not None and (first is None or entry.position < first.position):
                first = entry
        return count, first, done

    def extract_output(self, accumulator):
        return accumulator


def _new_entries(keyed):
    """The entry to process, if any; counts duplicates and entries an earlier run covered."""
    _, (count, entry, done) = keyed
    if count > 1:
        metrics.counter(metrics.DUPLICATES).inc(count - 1)
    if entry is None:  # a result of an earlier run whose URI is not in these manifests
        return
    if done:
        metrics.counter(metrics.ALREADY_DONE).inc()
        return
    yield dataclasses.replace(entry, duplicates=count - 1) if count > 1 else entry


class ReadManifests(beam.PTransform):
    """Manifest files -> an ``Entry`` per line (those of part i of K where ``partition`` = (i, K)),
    streamed: a manifest is never held in memory."""

    def __init__(self, plan: ManifestPlan, partition: tuple[int, int] = (0, 1),
                 storage: StorageOptions | None = None):
        super().__init__()
        self._plan = plan
        self._partition = partition
        self._storage = storage

    def expand(self, pbegin):
        entries = (
            pbegin
            | "ListManifests" >> beam.Create(self._plan.files)
            | "ReadLines" >> beam.ParDo(ReadManifest(self._plan, self._partition[0] == 0, self._storage))
        )
        if self._partition[1] > 1:
            partition = self._partition
            entries = entries | "ThisPart" >> beam.Filter(lambda entry: in_partition(entry.dedup_key, partition))
        return entries


class NewEntries(beam.PTransform):
    """``{"entries": Entry, "done": key}`` -> one ``Entry`` per distinct URI (plus one per
    unusable line) whose key is not among ``done`` (the keys earlier runs' rows cover).

    De-duplication and this join are one combine per URI, which Beam shuffles (and distributed
    runners spill to disk): nothing holds the set of URIs in one process."""

    def expand(self, inputs):
        keyed = inputs["entries"] | "KeyByUri" >> beam.Map(lambda entry: (entry.dedup_key, entry))
        marks = inputs["done"] | "MarkDone" >> beam.Map(lambda key: (key, None))
        return (
            (keyed, marks)
            | "WithEarlierRuns" >> beam.Flatten()
            | "FirstPerUri" >> beam.CombinePerKey(_FirstEntry())
            | "DropDuplicatesAndDone" >> beam.FlatMap(_new_entries)
        )
