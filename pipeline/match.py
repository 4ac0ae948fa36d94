"""``nsfw-scan match DIR --match-list FILE``: every earlier row of an output folder matched
against a hash list, on the hashes the row has (``pdq``, the flagged view's, and ``yahoo_pdq``),
without reading its file again: the rows a run with the list would skip as already done. What
the rows had is kept (``transforms.known_content.match_row``): a match a run found on another view,
or with another list, stays unless the new one is nearer. Rows written before nsfw-scan made
hashes have none and cannot be matched this way: run their manifests into a new folder to hash
them. A result file is rewritten whole, under the folder's lock, only when a row in it changes:
it gets a match or a nearer one, or is checked against a list for the first time."""

from __future__ import annotations

import collections

import pyarrow as pa

from ..model.hash_list import HashListError, Matching
from ..storage.lock import OutputLock
from ..storage.options import StorageOptions
from ..storage.paths import shown
from ..storage.results_folder import ResultsFolder
from ..storage.schema import HASH_COLUMNS, RESERVED, Column, output_schema
from ..transforms.known_content import hash_list, match_row


def match_results(directory: str, matching: Matching, storage: StorageOptions) -> dict:
    """Match every decoded row in ``directory`` against ``matching.list``; returns counts:
    ``matched``, ``not_matched`` (a good hash, nothing near it), ``poor_hash``, ``no_hash``
    (rows of versions that made none), ``errors`` (never decoded) and ``files`` rewritten."""
    if not matching.list:
        raise HashListError("no hash list: give one with --match-list FILE (or matching.list in --config)")
    hashes = hash_list(matching)
    counts = collections.Counter()
    with OutputLock(directory, storage) as lock:
        folder = ResultsFolder(directory)
        for path in folder.files():  # one file at a time
            table = folder.read(path)
            schema = output_schema({f.name: f.type for f in table.schema if f.name not in RESERVED})
            rows = table.select(schema.names).to_pylist()
            changed = False
            for i, row in enumerate(rows):
                if row[Column.SCORE] is None:
                    counts["errors"] += 1
                    continue
                rows[i] = match_row(row, hashes, matching)
                counts[_outcome(rows[i])] += 1
                changed = changed or _changed(row, rows[i])
            if changed:
                folder.rewrite(path, pa.Table.from_pylist(rows, schema=schema), lock)
                counts["files"] += 1
    return {key: counts[key] for key in ("matched", "not_matched", "poor_hash", "no_hash", "errors", "files")}


def _outcome(row: dict) -> str:
    if row[Column.MATCH] is not None:
        return "matched"
    if row[Column.MATCH_CHECKED]:
        return "not_matched"
    return "no_hash" if all(row[value] is None for value, _ in HASH_COLUMNS) else "poor_hash"


def _changed(row: dict, matched: dict) -> bool:
    """Whether matching changed what ``row`` says: a match or a nearer one, or a first check
    (``match_checked`` true). A row that could not be checked, null before, says nothing new
    when false: files are not rewritten for that."""
    return (any(matched[name] != row[name] for name in (Column.MATCH, Column.MATCH_DISTANCE))
            or (matched[Column.MATCH_CHECKED] is True and row[Column.MATCH_CHECKED] is not True))


def format_matched(directory: str, list_path: str, result: dict) -> str:
    return (f"rows of {shown(directory)} matched against {shown(list_path)}: {result['matched']} matched, "
            f"{result['not_matched']} not, {result['poor_hash']} with a hash too poor to match"
            + (f", {result['no_hash']} without a hash (written before rows had one: run their manifests into a "
               f"new folder to hash them)" if result["no_hash"] else "")
            + f"; {result['errors']} error rows; {result['files']} result files rewritten")
