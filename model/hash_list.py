"""A team's list of known content, as PDQ hashes with labels, and the search for the nearest one.

The list is a CSV file with a header naming at least the columns ``pdq`` (64 hex digits, Meta's
form, as ``model.pictures.pdq`` and ThreatExchange write them) and ``label``; other columns are allowed
and ignored. It is untrusted input: any fault is one error naming its line, a header alone is a
list of no hashes, and a hash listed again is kept once, with its first line's label. Hashes
are compared by Hamming distance: Meta's Hasher-Matcher-Actioner calls two PDQ hashes a match
at 31 bits or fewer, and distrusts hashes of quality below 50 (flat or featureless pictures,
whose hashes say little).

:class:`HashList` finds the nearest listed hash within a distance without comparing the query
with every hash: multi-index hashing (Norouzi et al.), as faiss' ``IndexBinaryMultiHash`` that
HMA uses does it. The 256 bits are cut into 16 pieces of 16; two hashes within ``d`` bits agree
within ``d // 16`` bits on at least one piece, so only the hashes that do (found in one sorted
table per piece) are compared in full. The answer is exact, as a full scan's.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import UsageError, printable
from .pictures.pdq import HEX_DIGITS

PDQ_COLUMN, LABEL_COLUMN = "pdq", "label"
_PIECES, _PIECE_BITS = 16, 16
_HEX = frozenset("0123456789abcdef")
_MAX_LABEL = 200
_MAX_FIELD = csv.field_size_limit()  # 128 KiB: a longer field is a fault (a quote that never closes makes one)
_NAMED_CONFLICTS = 3  # hashes listed with different labels that a warning names; the others it counts


class HashListError(UsageError):
    """A hash list that cannot be used; the message names the file, the line and the fix."""


@dataclasses.dataclass(frozen=True)
class Matching:
    """Matching of every scored file's hashes against a list of known content (``list``: a CSV
    file, local or in a bucket; none: no matching). A view's hash of quality below
    ``min_quality`` is not matched; a listed hash within ``max_distance`` bits is a match. The
    list's file may hold at most ``max_list_bytes`` bytes (decompressed, for a ``.gz`` one)."""

    list: str | None = None
    max_distance: int = 31
    min_quality: int = 50
    max_list_bytes: int = 256 << 20

    def problems(self):
        if not 0 <= self.max_distance <= 63:
            yield "max_distance", f"must be between 0 and 63, got {self.max_distance}"
        if not 0 <= self.min_quality <= 100:
            yield "min_quality", f"must be between 0 and 100, got {self.min_quality}"
        if self.max_list_bytes < 1:
            yield "max_list_bytes", f"must be a positive number of bytes, got {self.max_list_bytes}"


@dataclasses.dataclass(frozen=True)
class Match:
    """The nearest listed hash: its label and its distance in bits."""

    label: str
    distance: int


class HashList:
    """Listed hashes (``[n, 32]`` bytes, Meta's order) and their labels, with the index that
    finds the nearest one within ``max_distance`` bits. What reading the list found to say:
    ``repeated``, the lines that listed a hash again (left out), and ``conflicts``, a warning
    naming the lines that gave a hash another label than its first line's, or None."""

    def __init__(self, hashes: np.ndarray, labels: list[str], max_distance: int = Matching.max_distance,
                 repeated: int = 0, conflicts: str | None = None):
        hashes = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, HEX_DIGITS // 2)
        self.labels = labels
        self.max_distance = max_distance
        self.repeated, self.conflicts = repeated, conflicts
        self._words = hashes.view(">u8").astype(np.uint64)  # [n, 4], for the distance; the only copy kept
        pieces = self._pieces(hashes)  # [n, 16]
        count = len(hashes)
        # per piece: the hashes ordered by that piece's value (a radix sort of 16-bit keys), and
        # where each value starts in that order
        self._order = np.argsort(pieces, axis=0, kind="stable").T.astype(np.int32).ravel()  # [16 * n]
        counts = np.stack([np.bincount(pieces[:, p], minlength=1 << _PIECE_BITS) for p in range(_PIECES)])
        self._starts = np.zeros((_PIECES, (1 << _PIECE_BITS) + 1), dtype=np.int64)
        np.cumsum(counts, axis=1, out=self._starts[:, 1:])
        self._starts += (np.arange(_PIECES) * count)[:, None]  # into the flattened order
        radius = max_distance // _PIECES
        self._flips = np.array(sorted({sum(1 << b for b in bits) for r in range(radius + 1)
                                        for bits in itertools.combinations(range(_PIECE_BITS), r)}), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        """The index's memory, labels aside."""
        return sum(a.nbytes for a in (self._words, self._order, self._starts, self._flips))

    @staticmethod
    def _pieces(hashes: np.ndarray) -> np.ndarray:
        """``[n, 16]`` uint16: each hash's 16-bit pieces."""
        return np.ascontiguousarray(hashes).view(">u2").astype(np.uint16)

    def nearest(self, pdq_hex: str) -> Match | None:
        """The listed hash nearest to ``pdq_hex`` within ``max_distance`` bits (the first listed
        of equals), or None."""
        query = np.frombuffer(bytes.fromhex(pdq_hex), dtype=np.uint8)
        probes = self._pieces(query[None])[0].astype(np.int64)[:, None] ^ self._flips[None, :]  # [16, flips]
        starts = np.take_along_axis(self._starts, probes, axis=1).ravel()
        ends = np.take_along_axis(self._starts, probes + 1, axis=1).ravel()
        lengths = ends - starts
        total = int(lengths.sum())
        if not total:
            return None
        positions = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        candidates = self._order[positions]  # a hash may come up under several pieces
        words = np.frombuffer(query.tobytes(), dtype=">u8").astype(np.uint64)
        distances = np.bitwise_count(self._words[candidates] ^ words).sum(axis=1)
        nearest = int(distances.min())
        if nearest > self.max_distance:
            return None
        return Match(self.labels[int(candidates[distances == nearest].min())], nearest)


def parse_hash_list(data: bytes, origin: str, max_distance: int = Matching.max_distance) -> HashList:
    """A :class:`HashList` from a CSV file's bytes (UTF-8, a leading byte-order mark dropped;
    lines end in LF, CRLF or CR); ``origin`` names the file in errors. Every line is checked: a
    missing column, a hash that is not 64 hex digits, an empty or overlong label, a line of the
    wrong width, a quote that does not close on its line or a field over 128 KiB is a
    :class:`HashListError` naming the line. A header alone is a list of no hashes. A hash listed
    on several lines is kept once, with its first line's label.
    Read by pyarrow's CSV reader; a list it finds fault with, or whose repeated hashes have
    different labels, is read again line by line, for the line numbers."""
    data = data.removeprefix(codecs.BOM_UTF8)
    read = _read_table(data)
    if read is not None:
        hashes, labels, codes = read
        first = _first_of_each(hashes)
        if not np.any(codes != codes[first]):
            return _indexed(hashes, labels, first, None, max_distance)
    return _parse_lines(data.decode("utf-8", errors="replace"), origin, max_distance)


def _read_table(data: bytes) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """Every line's hash (``[n, 32]`` bytes), label and label code (equal labels, equal codes),
    as pyarrow reads them; None where anything is amiss (the line reader then names it)."""
    first_line = re.split(rb"\r\n?|\n", data, maxsplit=1)[0]
    quoted = b'"' in data  # only a quoted field can hold a line break
    try:  # every column as text (a hash of digits only is no number)
        header = next(csv.reader([first_line.decode("utf-8")]), [])
        table = pacsv.read_csv(io.BytesIO(data), parse_options=pacsv.ParseOptions(newlines_in_values=quoted),
                               convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in header}))
    except (csv.Error, UnicodeDecodeError, pa.ArrowException):
        return None
    names = [name.strip().lower() for name in table.column_names]
    if PDQ_COLUMN not in names or LABEL_COLUMN not in names or not header:
        return None
    for column in table.columns:  # text, on one line, each field within the csv module's limit: else
        # the line reader says what is wrong
        if not pa.types.is_string(column.type) or (quoted and pc.any(pc.match_substring_regex(column, "[\r\n]")).as_py()):
            return None
        if (pc.max(pc.binary_length(column)).as_py() or 0) > _MAX_FIELD and pc.max(pc.utf8_length(column)).as_py() > _MAX_FIELD:
            return None
    values = pc.utf8_lower(pc.utf8_trim_whitespace(table.column(names.index(PDQ_COLUMN))))
    labels = pc.utf8_trim_whitespace(table.column(names.index(LABEL_COLUMN)))
    good = pc.and_(pc.match_substring_regex(values, f"^[0-9a-f]{{{HEX_DIGITS}}}$"),
                   pc.and_(pc.greater(pc.utf8_length(labels), 0), pc.less_equal(pc.utf8_length(labels), _MAX_LABEL)))
    if not pc.all(pc.fill_null(good, False)).as_py():
        return None
    hashes = np.frombuffer(bytes.fromhex("".join(values.to_pylist())), dtype=np.uint8).reshape(-1, HEX_DIGITS // 2)
    encoded = pc.dictionary_encode(labels.combine_chunks())
    names_of = encoded.dictionary.to_pylist()  # one string per distinct label
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return hashes, [names_of[code] for code in codes.tolist()], codes


def _first_of_each(hashes: np.ndarray) -> np.ndarray:
    """For each listed hash, the index of the first one equal to it (itself, unless listed
    before). Sorted by the first 64 bits, which only equal hashes (or rare others) share; those
    rows alone are sorted by all 256."""
    words = np.ascontiguousarray(hashes).view(np.uint64)  # [n, 4]
    first = np.arange(len(words))
    order = np.argsort(words[:, 0])
    same = words[order[1:], 0] == words[order[:-1], 0]
    shared = np.zeros(len(words), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    rows = order[shared]
    if len(rows):
        rows = rows[np.lexsort((rows, *words[rows].T[::-1]))]  # by hash, then by place in the list
        starts = np.ones(len(rows), dtype=bool)
        starts[1:] = np.any(words[rows[1:]] != words[rows[:-1]], axis=1)
        first[rows] = rows[starts][np.cumsum(starts) - 1]
    return first


def _indexed(hashes: np.ndarray, labels: list[str], first: np.ndarray, conflicts: str | None,
             max_distance: int) -> HashList:
    """The list with each hash once, as its first line gave it."""
    kept = np.flatnonzero(first == np.arange(len(first)))
    return HashList(hashes[kept], [labels[i] for i in kept], max_distance, len(first) - len(kept), conflicts)


def _conflicts(origin: str, first: np.ndarray, codes: np.ndarray, labels: list[str], lines: list[int]) -> str | None:
    """The warning that names the lines giving a hash other labels than its first line's (the
    first of each label), for the first few such hashes; None when there are none."""
    hashes = np.unique(first[codes != codes[first]])  # in the list's order
    if not len(hashes):
        return None
    named = []
    for at in hashes[:_NAMED_CONFLICTS]:
        rows = np.flatnonzero(first == at)
        _, firsts = np.unique(codes[rows], return_index=True)
        shown = np.sort(rows[firsts])  # the first line of each label, in the list's order
        named.append(", ".join(f"line {lines[i]} '{printable(labels[i], 60)}'" for i in shown[:4])
                     + (", ..." if len(shown) > 4 else ""))
    more = f"; and {len(hashes) - _NAMED_CONFLICTS} more" if len(hashes) > _NAMED_CONFLICTS else ""
    listed = "1 hash is" if len(hashes) == 1 else f"{len(hashes)} hashes are"
    return (f"{origin}: {listed} listed with different labels; each keeps its first line's label: "
            + "; ".join(named) + more)


def _records(text: str, origin: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of each CSV record; a record must lie on one line, and a field the
    csv module will not read (over 128 KiB) is an error naming its line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            why = (f"a field is longer than {_MAX_FIELD} characters (a quote that never closes makes one); "
                   f"a hash list's fields are a hash and a label of at most {_MAX_LABEL} characters"
                   if "field limit" in str(exc) else f"not readable as CSV ({exc})")
            raise HashListError(f"{origin} line {line + 1}: {why}") from None
        if fields is None:
            return
        if reader.line_num > line + 1:
            raise HashListError(f"{origin} line {line + 1}: a quote opens a field that does not close on this line; "
                                f"each hash is one line: remove the quote or close it on its line")
        line = reader.line_num
        yield line, fields


def _parse_lines(text: str, origin: str, max_distance: int) -> HashList:
    """:func:`parse_hash_list` line by line, for the line number of the first fault and of
    repeated hashes' labels."""
    records = _records(text, origin)
    _, header = next(records, (1, None))
    if header is None:
        raise HashListError(f"{origin}: the hash list is empty; it needs a header line 'pdq,label' and one line per hash")
    names = [name.strip().lower() for name in header]
    missing = [name for name in (PDQ_COLUMN, LABEL_COLUMN) if name not in names]
    if missing:
        raise HashListError(f"{origin} line 1: no column {' or '.join(repr(m) for m in missing)} in the header "
                            f"({printable(','.join(header), 200)}); the list needs the columns pdq,label")
    pdq_at, label_at = names.index(PDQ_COLUMN), names.index(LABEL_COLUMN)
    hashes, labels, lines, codes = bytearray(), [], [], {}  # codes: label -> its number, one string per label
    for line, fields in records:
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(names):
            raise HashListError(f"{origin} line {line}: {len(fields)} fields where the header has {len(names)}")
        value, label = fields[pdq_at].strip().lower(), fields[label_at].strip()
        if len(value) != HEX_DIGITS or not _HEX.issuperset(value):
            raise HashListError(f"{origin} line {line}: the pdq value '{printable(value, 80)}' is not "
                                f"{HEX_DIGITS} hex digits")
        if not label or len(label) > _MAX_LABEL:
            raise HashListError(f"{origin} line {line}: the label must have 1 to {_MAX_LABEL} characters")
        hashes += bytes.fromhex(value)
        labels.append(label)
        lines.append(line)
        codes.setdefault(label, len(codes))
    listed = np.frombuffer(bytes(hashes), dtype=np.uint8).reshape(-1, HEX_DIGITS // 2)
    first = _first_of_each(listed)
    label_codes = np.array([codes[label] for label in labels], dtype=np.int64)
    distinct = list(codes)
    labels = [distinct[code] for code in label_codes.tolist()]  # one string per distinct label
    return _indexed(listed, labels, first, _conflicts(origin, first, label_codes, labels, lines), max_distance)
