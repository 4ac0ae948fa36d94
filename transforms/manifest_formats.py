"""Reading manifests, format by format, as plain functions (no Beam): a manifest's physical lines
(or Parquet rows) -> :class:`Record` s -> one :class:`Entry` per line that names something.

Formats, chosen by file name (``.gz`` compressed text is read transparently):

- plain text (any other name): one URI per line; blank lines and ``#`` comments are skipped;
- ``.csv`` / ``.tsv``: a header row; the URI column is ``uri`` unless configured otherwise;
- ``.jsonl`` / ``.ndjson``: one JSON object per line, with the URI under the same key;
- ``.parquet``: a column holding the URI.

Every other column passes through to the output unchanged (CSV and JSON values are strings,
Parquet values keep their type). Relative URIs resolve against the manifest's own folder. A
byte-order mark at the start of a text manifest (Excel's "CSV UTF-8", Notepad) is dropped.

Every physical line is accounted for: it is a header, blank or a comment, the first line of an
entry, or a further line of a CSV record whose quoted field spans lines (:class:`CsvRecords`).
No content stops the job: over-long lines, bytes that are not UTF-8, a quote that never closes
and JSON nested too deep are bad lines, each costing only its own line. A manifest that cannot
be read on (a damaged ``.gz``) raises :class:`ManifestError` naming it.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from ..model.errors import UsageError
from ..storage.schema import Column
from .elements import Entry
from .metrics import HEADERS, SKIPPED

DEFAULT_URI_COLUMN = Column.URI  # a manifest's column of URIs, unless manifest.uri_column names another

MAX_LINE_CHARS = 1 << 20  # a longer line is a bad line (the rest of it is skipped, never held)
MAX_RECORD_CHARS = 1 << 17  # a quoted CSV field may span lines up to this many characters


class ManifestError(UsageError):
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


def open_raw(path: str):
    """The file's bytes as stored, from any store Beam's filesystems reach. Beam is imported
    here, at the first file read, not with this module (``config`` takes its defaults from
    here, and ``nsfw-scan score`` of local files needs no Beam)."""
    from apache_beam.io.filesystem import CompressionTypes

    from ..storage.filesystems import FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_text(path: str, compressed: bool):
    raw = open_raw(path)
    if compressed:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    # utf-8-sig: a leading byte-order mark is dropped (and none is required)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


READ_ERRORS = (OSError, EOFError, zlib.error, pa.ArrowException)


def unreadable(path: str, exc: BaseException) -> ManifestError:
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


class Record(NamedTuple):
    """What a manifest reader found at ``line``: ``span`` physical lines, either ``skipped``
    (``HEADERS`` or ``SKIPPED``) or one entry's URI and values, or why the line is unusable."""

    line: int
    span: int = 1
    uri: object = None
    values: object = None
    error: str | None = None
    skipped: str | None = None


def physical_lines(f) -> Iterator[tuple[int, str | None]]:
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


def _unusable(line: int, text: str | None) -> Record | None:
    """The record of a physical line with nothing to read in it (over the length limit, or
    blank), the same in every line-based format; ``None`` for any other line."""
    if text is None:
        return Record(line, error=f"the line is longer than {MAX_LINE_CHARS} characters")
    if not text.strip():
        return Record(line, skipped=SKIPPED)
    return None


class CsvRecords:
    """A CSV/TSV file's records, ``values`` being the list of fields; with ``uri_column``, the
    first is the header (``skipped`` = ``HEADERS``) and the others are read against it.

    A record is one physical line, or several when a quoted field spans lines (as Excel writes
    notes with line breaks). Such a span is taken only when its quotes close within
    ``MAX_RECORD_CHARS``, the record has the header's width and its URI has no line break;
    otherwise its first line alone is a bad line and reading goes on at the line after it, so
    the lines read ahead to find out are kept (``pending``) and read again."""

    def __init__(self, f, fmt: str, uri_column: str | None = None):
        self._delimiter = "," if fmt == "csv" else "\t"
        self._fmt = fmt
        self._uri_column = uri_column
        self._source = physical_lines(f)
        self._pending: collections.deque = collections.deque()  # lines read ahead, not yet consumed
        self._width = None  # the header's number of fields, once read
        self._uri_field = None  # the URI's place in the header
        self._fed = 0  # pending lines the csv module has taken for the quoted record being read
        self._ran_out = False  # whether that record's quote ran past the file's end or MAX_RECORD_CHARS

    def __iter__(self) -> Iterator[Record]:
        while True:
            item = self._pending.popleft() if self._pending else next(self._source, None)
            if item is None:
                return
            line, text = item
            if (unusable := _unusable(line, text)) is not None:
                yield unusable
            elif '"' not in text:  # no quote: the fields are what lies between delimiters (as csv reads them)
                yield self._record(line, 1, text.rstrip("\r\n").split(self._delimiter))
            else:
                self._pending.appendleft(item)  # read on from here, as far as the quote reaches
                yield self._quoted(line)

    def _record(self, line: int, span: int, fields: list[str]) -> Record:
        if self._uri_column is not None and self._width is None:
            self._width = len(fields)
            self._uri_field = fields.index(self._uri_column) if self._uri_column in fields else None
            return Record(line, span, values=fields, skipped=HEADERS)
        return Record(line, span, values=fields)

    def _quoted(self, line: int) -> Record:
        """The record whose first line (the first pending one) opens a quote."""
        self._fed, self._ran_out = 0, False
        try:
            fields, error = next(csv.reader(self._feed(), delimiter=self._delimiter), None), None
        except csv.Error as exc:
            fields, error = None, f"not readable as {self._fmt.upper()} ({exc})"
        span = self._fed
        error = error or self._misread(fields, span)
        if error is not None:
            self._pending.popleft()  # this line alone is bad; the next one starts afresh
            return Record(line, error=error)
        for _ in range(span):
            self._pending.popleft()
        return self._record(line, span, fields)

    def _feed(self) -> Iterator[str]:
        """Pending lines, then new ones, while the record stays within ``MAX_RECORD_CHARS``."""
        size = 0
        while True:
            if self._fed == len(self._pending):
                item = next(self._source, None)
                if item is None:
                    self._ran_out = True
                    return
                self._pending.append(item)
            piece = self._pending[self._fed][1]
            size += len(piece) if piece is not None else MAX_RECORD_CHARS + 1
            if self._fed > 0 and (piece is None or size > MAX_RECORD_CHARS):
                self._ran_out = True
                return
            self._fed += 1
            yield piece

    def _misread(self, fields: list[str] | None, span: int) -> str | None:
        """Why a quoted record cannot be right, or ``None``."""
        if self._ran_out or fields is None:
            return "a quote opens a field that does not close"
        if span > 1 and self._width is not None and len(fields) != self._width:
            return (f"a quote opens a field that does not close on this line, and the {span} lines up to "
                    f"where it closes have {len(fields)} fields, not {self._width}")
        uri = fields[self._uri_field] if self._uri_field is not None and self._uri_field < len(fields) else ""
        if span > 1 and ("\n" in uri or "\r" in uri):
            return "a quote opens the URI field and does not close on this line"
        return None


def text_records(path: str, compressed: bool, uri_column: str) -> Iterator[Record]:
    with open_text(path, compressed) as f:
        for line, text in physical_lines(f):
            if (unusable := _unusable(line, text)) is not None:
                yield unusable
                continue
            text = text.strip()
            if text.startswith("#"):
                yield Record(line, skipped=SKIPPED)
                continue
            error = "not valid UTF-8 text" if "\ufffd" in text else None
            yield Record(line, uri=text, error=error)


def delimited_records(path: str, compressed: bool, uri_column: str, fmt: str = "csv") -> Iterator[Record]:
    with open_text(path, compressed) as f:
        header = None
        for record in CsvRecords(f, fmt, uri_column):
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


def jsonl_records(path: str, compressed: bool, uri_column: str) -> Iterator[Record]:
    with open_text(path, compressed) as f:
        for line, text in physical_lines(f):
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
            yield Record(line, uri=record.get(uri_column), values=record)


def parquet_records(path: str, compressed: bool, uri_column: str) -> Iterator[Record]:
    with open_raw(path) as f:
        row = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=8192):
            for record in batch.to_pylist():
                row += 1
                yield Record(row, uri=record.get(uri_column), values=record)


def records(path: str, uri_column: str = DEFAULT_URI_COLUMN) -> Iterator[Record]:
    """Every physical line (or Parquet row) of the manifest, as :class:`Record` s. A manifest
    that cannot be read on (e.g. a truncated ``.gz``) raises :class:`ManifestError`."""
    fmt, compressed = manifest_format(path)
    try:
        if fmt in ("csv", "tsv"):
            yield from delimited_records(path, compressed, uri_column, fmt)
        else:
            reader = {"text": text_records, "jsonl": jsonl_records, "parquet": parquet_records}[fmt]
            yield from reader(path, compressed, uri_column)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def resolve(uri: str, manifest: str) -> str:
    """Relative URIs are taken from the manifest's folder; local paths are normalised (``.``,
    ``..`` and repeated separators), so that one file has one URI however a manifest names it."""
    if "://" in uri:
        return uri
    if not os.path.isabs(uri):
        from ..storage.filesystems import FileSystems  # see open_raw

        uri = FileSystems.join(FileSystems.split(manifest)[0], uri)
        if "://" in uri:  # a remote manifest's folder: its names are the store's
            return uri
    return os.path.normpath("/" + uri.lstrip("/")) if uri.startswith("//") else os.path.normpath(uri)


def _as_type(value, dtype: pa.DataType):
    if value is None or not pa.types.is_string(dtype) or isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def entry_of_record(record: Record, path: str, columns: dict[str, pa.DataType], uri_column: str) -> Entry:
    """The entry of a record that is not skipped: its URI resolved, its pass-through ``columns``
    typed as the output has them, or why the line is unusable."""
    uri, values, error = record.uri, record.values or {}, record.error
    if error is None and (not isinstance(uri, str) or not uri.strip()):
        error = f"no URI in column {uri_column!r}" if uri is None or isinstance(uri, str) else \
            f"the URI is not a string: {uri!r}"
    typed = {c: _as_type(values.get(c), t) for c, t in columns.items()}
    if error:
        return Entry(None, typed, path, record.line, error)
    return Entry(resolve(uri.strip(), path), typed, path, record.line)


def read_entries(path: str, columns: dict[str, pa.DataType], uri_column: str = DEFAULT_URI_COLUMN) -> Iterator[Entry]:
    """The entries of one manifest, in order, outside Beam (labels files, checks)."""
    for record in records(path, uri_column):
        if record.skipped is None:
            yield entry_of_record(record, path, columns, uri_column)
