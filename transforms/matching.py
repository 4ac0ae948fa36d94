"""The hash list of known content (``model.hash_list``), read from its file (local or in a
bucket, gzip-compressed when its name ends in ``.gz``) once per process and shared, like the model."""

from __future__ import annotations

import gzip
import threading

from ..model.hash_list import HashList, HashListError, Matching, parse_hash_list
from ..storage.paths import shown
from ..storage.schema import Column
from .manifest_formats import READ_ERRORS, open_raw

_lists: dict[Matching, HashList] = {}
_lock = threading.Lock()


def read_hash_list(matching: Matching) -> HashList:
    """The list ``matching.list`` names, read and indexed; a file that cannot be read or used is
    a :class:`HashListError` naming it."""
    path = matching.list
    try:
        with open_raw(path) as raw:
            data = raw.read()
        if path.endswith(".gz"):
            data = gzip.decompress(data)
    except READ_ERRORS as exc:
        why = "no such file" if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}"
        raise HashListError(f"cannot read the hash list {shown(path)} ({why})"[:500]) from None
    return parse_hash_list(data, shown(path), matching.max_distance)


def hash_list(matching: Matching) -> HashList:
    """This process's copy of the list (read on first use)."""
    with _lock:
        if matching not in _lists:
            _lists[matching] = read_hash_list(matching)
        return _lists[matching]


def match_row(row: dict, hashes: HashList, matching: Matching) -> dict:
    """A row matched on its own hash (``pdq``, Yahoo's view's) alone: for rows whose other views'
    hashes are not at hand (a score reused from an earlier run). A row without a hash (scored by
    a version that made none) or with a poor one is not matched (``match_checked`` false)."""
    value, quality = row.get(Column.PDQ), row.get(Column.PDQ_QUALITY)
    checked = value is not None and quality is not None and quality >= matching.min_quality
    found = hashes.nearest(value) if checked else None
    return {**row, Column.MATCH: found and found.label, Column.MATCH_DISTANCE: found and found.distance,
            Column.MATCH_CHECKED: checked}
