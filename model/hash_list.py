"""A team's list of known content, as PDQ hashes with labels, and the search for the nearest one.

The list is a CSV file with a header naming at least the columns ``pdq`` (64 hex digits, Meta's
form, as ``model.pdq`` and ThreatExchange write them) and ``label``; other columns are allowed
and ignored. Hashes are compared by Hamming distance: Meta's Hasher-Matcher-Actioner calls two
PDQ hashes a match at 31 bits or fewer, and distrusts hashes of quality below 50 (flat or
featureless pictures, whose hashes say little).

:class:`HashList` finds the nearest listed hash within a distance without comparing the query
with every hash: multi-index hashing (Norouzi et al.), as faiss' ``IndexBinaryMultiHash`` that
HMA uses does it. The 256 bits are cut into 16 pieces of 16; two hashes within ``d`` bits agree
within ``d // 16`` bits on at least one piece, so only the hashes that do (found in one sorted
table per piece) are compared in full. The answer is exact, as a full scan's.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import UsageError
from .pdq import HEX_DIGITS

PDQ_COLUMN, LABEL_COLUMN = "pdq", "label"
_PIECES, _PIECE_BITS = 16, 16
_HEX = frozenset("0123456789abcdef")
_MAX_LABEL = 200


class HashListError(UsageError):
    """A hash list that cannot be used; the message names the file, the line and the fix."""


@dataclasses.dataclass(frozen=True)
class Matching:
    """Matching of every scored file's hashes against a list of known content (``list``: a CSV
    file, local or in a bucket; none: no matching). A view's hash of quality below
    ``min_quality`` is not matched; a listed hash within ``max_distance`` bits is a match."""

    list: str | None = None
    max_distance: int = 31
    min_quality: int = 50

    def problems(self):
        if not 0 <= self.max_distance <= 63:
            yield "max_distance", f"must be between 0 and 63, got {self.max_distance}"
        if not 0 <= self.min_quality <= 100:
            yield "min_quality", f"must be between 0 and 100, got {self.min_quality}"


@dataclasses.dataclass(frozen=True)
class Match:
    """The nearest listed hash: its label and its distance in bits."""

    label: str
    distance: int


class HashList:
    """Listed hashes (``[n, 32]`` bytes, Meta's order) and their labels, with the index that
    finds the nearest one within ``max_distance`` bits."""

    def __init__(self, hashes: np.ndarray, labels: list[str], max_distance: int = Matching.max_distance):
        hashes = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, HEX_DIGITS // 2)
        self.labels = labels
        self.max_distance = max_distance
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
    """A :class:`HashList` from a CSV file's bytes (UTF-8); ``origin`` names the file in errors.
    Every line is checked: a missing column, a hash that is not 64 hex digits, an empty or
    overlong label or a line of the wrong width is a :class:`HashListError` naming the line.
    Read by pyarrow's CSV reader; a list it finds fault with is read again line by line, for
    the error's line number."""
    header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", errors="replace")]), [])
    try:  # every column as text (a hash of digits only is no number)
        table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}))
    except pa.ArrowInvalid:
        table = None
    if table is not None:
        names = [name.strip().lstrip("\ufeff").lower() for name in table.column_names]
        if PDQ_COLUMN in names and LABEL_COLUMN in names and table.num_rows:
            values = pc.utf8_lower(pc.utf8_trim_whitespace(table.column(names.index(PDQ_COLUMN))))
            labels = pc.utf8_trim_whitespace(table.column(names.index(LABEL_COLUMN)))
            good = pc.and_(pc.match_substring_regex(values, f"^[0-9a-f]{{{HEX_DIGITS}}}$"),
                           pc.and_(pc.greater(pc.utf8_length(labels), 0), pc.less_equal(pc.utf8_length(labels), _MAX_LABEL)))
            if pc.all(pc.fill_null(good, False)).as_py():
                hashes = np.frombuffer(bytes.fromhex("".join(values.to_pylist())), dtype=np.uint8)
                seen: dict[str, str] = {}
                return HashList(hashes, [seen.setdefault(label, label) for label in labels.to_pylist()], max_distance)
    return _parse_lines(io.StringIO(data.decode("utf-8", errors="replace"), newline=""), origin, max_distance)


def _parse_lines(lines: Iterable[str], origin: str, max_distance: int) -> HashList:
    """:func:`parse_hash_list` line by line, for the line number of the first fault."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise HashListError(f"{origin}: the hash list is empty; it needs a header line 'pdq,label' and one line per hash")
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    missing = [name for name in (PDQ_COLUMN, LABEL_COLUMN) if name not in names]
    if missing:
        raise HashListError(f"{origin} line 1: no column {' or '.join(repr(m) for m in missing)} in the header "
                            f"({','.join(header)[:200]}); the list needs the columns pdq,label")
    pdq_at, label_at = names.index(PDQ_COLUMN), names.index(LABEL_COLUMN)
    hashes, labels, seen = bytearray(), [], {}
    for fields in reader:
        line = reader.line_num
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(names):
            raise HashListError(f"{origin} line {line}: {len(fields)} fields where the header has {len(names)}")
        value, label = fields[pdq_at].strip().lower(), fields[label_at].strip()
        if len(value) != HEX_DIGITS or not _HEX.issuperset(value):
            raise HashListError(f"{origin} line {line}: the pdq value {value[:80]!r} is not {HEX_DIGITS} hex digits")
        if not label or len(label) > _MAX_LABEL:
            raise HashListError(f"{origin} line {line}: the label must have 1 to {_MAX_LABEL} characters")
        hashes += bytes.fromhex(value)
        labels.append(seen.setdefault(label, label))  # one string per distinct label
    if not labels:
        raise HashListError(f"{origin}: the hash list has a header but no hashes")
    return HashList(np.frombuffer(bytes(hashes), dtype=np.uint8), labels, max_distance)
