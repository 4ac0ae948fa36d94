"""The hash list of known content (``model.hash_list``), read from its file (local or in a
bucket, gzip-compressed when its name ends in ``.gz``; at most ``matching.max_list_bytes``
decompressed) once per process and shared, like the model."""

from __future__ import annotations

import gzip
import logging

from ..model.hash_list import HashList, HashListError, Match, Matching, parse_hash_list
from ..storage.paths import shown
from ..storage.schema import HASH_COLUMNS, Column
from ..storage.worker import once_per_process
from .manifest_formats import READ_ERRORS, open_raw

log = logging.getLogger(__name__)


def read_hash_list(matching: Matching) -> HashList:
    """The list ``matching.list`` names, read and indexed; a file that cannot be read or used, or
    holds more than ``matching.max_list_bytes`` bytes (decompressed), is a :class:`HashListError`
    naming it. What reading found (repeated hashes, a list of none) is logged, once per process."""
    path, limit = matching.list, matching.max_list_bytes
    compressed = path.endswith(".gz")
    try:
        with open_raw(path) as raw:
            data = (gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw).read(limit + 1)
    except READ_ERRORS as exc:
        why = "no such file" if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}"
        raise HashListError(f"cannot read the hash list {shown(path)} ({why})"[:500]) from None
    if len(data) > limit:
        raise HashListError(f"{shown(path)}: the hash list holds more than matching.max_list_bytes ({limit:,} bytes"
                            f"{' decompressed' if compressed else ''}); split it, or raise matching.max_list_bytes "
                            f"in a --config file if it is a list you trust")
    hashes = parse_hash_list(data, shown(path), matching.max_distance)
    if hashes.conflicts:
        log.warning("%s", hashes.conflicts)
    if hashes.repeated:
        log.info("hash list %s: %d %s a hash listed before; each hash is kept once, with its first line's label",
                 shown(path), hashes.repeated, "line lists" if hashes.repeated == 1 else "lines list")
    if not len(hashes):
        log.warning("hash list %s has no hashes (a header only): nothing will match it", shown(path))
    return hashes


def hash_list(matching: Matching) -> HashList:
    """This process's copy of the list (read on first use)."""
    return once_per_process(("hash list", matching), lambda: read_hash_list(matching))


def nearest(hashes: HashList, values) -> Match | None:
    """The listed hash nearest to any of the hashes ``values`` (64 hex digits each; the earliest
    of equals), or None."""
    found = [match for match in map(hashes.nearest, dict.fromkeys(values)) if match]
    return min(found, key=lambda match: match.distance, default=None)


def match_row(row: dict, hashes: HashList, matching: Matching) -> dict:
    """A row matched on the hashes it has (``storage.schema.HASH_COLUMNS``: ``pdq``, the view's
    that gave the score, and ``yahoo_pdq``), without its file: a score reused from an earlier
    run, or rows already written. What the row had is kept: of its match and the new one the
    nearer (its own of equals), and ``match_checked`` stays true once true. A row without a hash
    (scored by a version that made none) or with poor ones is not matched (``match_checked``
    false unless it was checked before)."""
    trusted = [row[value] for value, quality in HASH_COLUMNS
               if row.get(value) is not None and row.get(quality) is not None and row[quality] >= matching.min_quality]
    found = nearest(hashes, trusted)
    if row.get(Column.MATCH) is not None and (found is None or row[Column.MATCH_DISTANCE] <= found.distance):
        found = Match(row[Column.MATCH], row[Column.MATCH_DISTANCE])
    return {**row, Column.MATCH: found and found.label, Column.MATCH_DISTANCE: found and found.distance,
            Column.MATCH_CHECKED: bool(trusted) or row.get(Column.MATCH_CHECKED) is True}
