"""What the launcher knows of the manifests before the pipeline starts (no Beam steps here).

A manifest pattern that matches nothing or names a folder, a file that is not text (an image
given as a manifest, told by its first bytes), a manifest that cannot be opened, and a header
without the URI column fail here, naming the pattern or the file, before any work starts.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from ..model.pictures.signatures import binary_kind
from ..storage.filesystems import FileSystems
from ..storage.paths import shown
from ..storage.schema import RESERVED
from .manifest_formats import (
    DEFAULT_URI_COLUMN,
    READ_ERRORS,
    CsvRecords,
    ManifestError,
    manifest_format,
    open_raw,
    open_text,
    records,
    unreadable,
)

SNIFF_BYTES = 1024  # a text manifest's first bytes, read to tell an image or other binary file given by mistake


@dataclasses.dataclass(frozen=True)
class ManifestHelp:
    """How the user of a command fixes a file it reads as a manifest, in its own flags: ``run``'s
    by default (``nsfw-scan calibrate`` reads its labels file as a manifest, with its own)."""

    no_uri_column: str = "name the URI column with --uri-column, or use a plain-text manifest with one URI per line"
    not_text: str = ("not a manifest. A manifest lists the URIs to score, one per line (or CSV, JSON Lines, Parquet): "
                     "make one, e.g. find DIR -type f > uploads.txt, and give --manifest uploads.txt; or score a few "
                     "files directly with nsfw-scan score FILE ...")


@dataclasses.dataclass(frozen=True)
class ManifestPlan:
    """What the pipeline needs to know of its manifests before it starts."""

    files: tuple[str, ...]
    columns: dict[str, pa.DataType]  # pass-through columns and their output types
    uri_column: str = DEFAULT_URI_COLUMN


def _header_columns(path: str, uri_column: str, usage: ManifestHelp) -> dict[str, pa.DataType]:
    try:
        return _read_header(path, uri_column, usage)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def _read_header(path: str, uri_column: str, usage: ManifestHelp) -> dict[str, pa.DataType]:
    fmt, compressed = manifest_format(path)
    if fmt == "text":
        return {}
    if fmt == "parquet":
        with open_raw(path) as f:
            schema = pq.read_schema(f)
        names = schema.names
        types = {field.name: field.type for field in schema}
    else:
        with open_text(path, compressed) as f:
            if fmt == "jsonl":
                first = next((line for line in f if line.strip()), "{}")
                try:
                    record = json.loads(first)
                except ValueError:
                    raise ManifestError(f"{path}: the first line is not JSON; expected one JSON object per line") from None
                names = list(record) if isinstance(record, dict) else []
            else:
                header = next((r for r in CsvRecords(f, fmt) if r.skipped is None), None)
                names = header.values if header is not None and header.error is None else []
        types = {name: pa.string() for name in names}
    if uri_column not in names:
        raise ManifestError(f"{path}: no {uri_column!r} column (found {names[:20]}); {usage.no_uri_column}")
    return {name: dtype for name, dtype in types.items() if name != uri_column}


def _not_text(path: str) -> str | None:
    """What a manifest that should be text (plain, CSV, TSV, JSON Lines) is instead, from its first
    bytes (decompressed for ``.gz``): e.g. ``"a JPEG image"``; ``None`` for text, Parquet, or a
    file that cannot be read (reading it reports that)."""
    fmt, compressed = manifest_format(path)
    if fmt == "parquet":
        return None
    try:
        with open_raw(path) as raw:
            head = gzip.GzipFile(fileobj=raw, mode="rb").read(SNIFF_BYTES) if compressed else raw.read(SNIFF_BYTES)
    except (*READ_ERRORS, gzip.BadGzipFile):
        return None
    return binary_kind(head)


def _not_a_manifest(pattern: str, matched: list[str], path: str, what: str, usage: ManifestHelp) -> ManifestError:
    """The error for a manifest pattern that matches a file that is not text: what it is, and
    how to make a manifest or score images directly."""
    where = (f"manifest {shown(path)}" if len(matched) == 1 else
             f"manifest pattern {shown(pattern)!r} matches {len(matched)} files, and {shown(path)}")
    if what == "UTF-16 text":
        return ManifestError(f"{where}: is UTF-16 text; save it as UTF-8 (manifests are UTF-8 text)")
    return ManifestError(f"{where}: is {what}, {usage.not_text}")


def _is_folder(path: str) -> bool:
    """Folders are never manifests (object stores have no folders, only names ending in /)."""
    return path.endswith("/") or ("://" not in path and os.path.isdir(path))


def _matched(pattern: str, usage: ManifestHelp) -> list[str]:
    """The manifest files a pattern names, sorted; a folder, or nothing, is an error."""
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
            raise _not_a_manifest(pattern, paths, path, what, usage)
    return paths


def plan_manifests(patterns: list[str], uri_column: str = DEFAULT_URI_COLUMN,
                   usage: ManifestHelp = ManifestHelp(), into_rows: bool = True) -> ManifestPlan:
    """Expand the patterns, check that every manifest opens, and read their headers. Fails
    early, naming the pattern or the file, and the fix in the flags ``usage`` names.
    ``into_rows``: the manifests' columns pass into result rows, so none may have a result
    column's name (a labels file's ``score`` or ``decision`` is its own)."""
    files = list(dict.fromkeys(path for pattern in patterns for path in _matched(pattern, usage)))
    columns: dict[str, pa.DataType] = {}
    for path in files:
        header = _header_columns(path, uri_column, usage)
        clashes = sorted(set(header) & RESERVED) if into_rows else []
        if clashes:
            raise ManifestError(f"{path}: columns {clashes} clash with output columns of the same name; rename them")
        for name, dtype in header.items():
            if name in columns and columns[name] != dtype:
                dtype = pa.string()  # the same column typed differently in two manifests
            columns[name] = dtype
    # every manifest opens and starts well (the rest is checked as the pipeline reads it)
    firsts = [next((r for r in records(path, uri_column) if r.skipped is None), None) for path in files]
    if not any(firsts):
        raise ManifestError(f"the manifests at {', '.join(map(repr, patterns))} list no URIs; nothing to do")
    return ManifestPlan(tuple(files), columns, uri_column)
