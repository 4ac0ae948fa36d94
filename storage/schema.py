"""The result files' columns: their names and Parquet types, defined once, here.

Every step that writes a row (``transforms/results.py`` and the steps that fill in what they
learn) and every reader of result files (earlier runs, salvage, the report) names columns
through :class:`Column`; the schema is built from the same names.

Columns, in order: ``uri``, the manifests' pass-through columns, then ``score``, ``decision``,
``safe_below``, ``nsfw_from``, ``error_kind``, ``error``, ``sha256``, ``pdq``, ``pdq_quality``, ``yahoo_pdq``,
``yahoo_pdq_quality``, ``match``, ``match_distance``, ``match_checked``, ``bytes``, ``width``, ``height``, ``frames``, ``views``,
``view``, ``yahoo_score``, ``exact``, ``loader``, ``model``, ``source_manifest``, ``source_line``,
``duplicates``, ``scored_at``.
"""

from __future__ import annotations

import pyarrow as pa


class Column:
    """The name of each result column (rows are dicts keyed by these)."""

    URI = "uri"
    SCORE = "score"
    DECISION = "decision"
    SAFE_BELOW = "safe_below"  # the thresholds the decision was made at
    NSFW_FROM = "nsfw_from"
    ERROR_KIND = "error_kind"
    ERROR = "error"
    SHA256 = "sha256"
    # PDQ hash (64 hex digits, Meta's bit order) and quality (0-100) of the view named in ``view``,
    # the one that gave the score, as displayed (``model/pictures/pdq.py``): what was flagged
    PDQ = "pdq"
    PDQ_QUALITY = "pdq_quality"
    # the same of Yahoo's view as displayed: the first frame, EXIF orientation applied
    YAHOO_PDQ = "yahoo_pdq"
    YAHOO_PDQ_QUALITY = "yahoo_pdq_quality"
    # the label of the nearest hash of the run's hash list (``matching.list``) within
    # ``matching.max_distance`` bits of any view's hash, and that distance; null without one
    MATCH = "match"
    MATCH_DISTANCE = "match_distance"
    # true: a view's hash was matched against the list; false: no view had a hash of quality
    # ``matching.min_quality`` or more (or none could be made), so nothing was matched; null: no list
    MATCH_CHECKED = "match_checked"
    BYTES = "bytes"
    WIDTH = "width"
    HEIGHT = "height"
    FRAMES = "frames"  # frames in the file
    VIEWS = "views"  # views of it scored
    VIEW = "view"  # the view that gave the score
    VIEW_SCORE = "view_score"  # its own score, before it counted as ``score`` (``model.decision``)
    YAHOO_SCORE = "yahoo_score"  # Yahoo's own view's score
    EXACT = "exact"  # the scores are Yahoo's exact ones (its loader, the float32 model)
    LOADER = "loader"
    MODEL = "model"
    SOURCE_MANIFEST = "source_manifest"
    SOURCE_LINE = "source_line"
    DUPLICATES = "duplicates"  # other lines of this run's manifests that named the same URI
    SCORED_AT = "scored_at"


RESULT_FIELDS = [
    pa.field(Column.SCORE, pa.float32()),
    pa.field(Column.DECISION, pa.string()),
    pa.field(Column.SAFE_BELOW, pa.float64()),
    pa.field(Column.NSFW_FROM, pa.float64()),
    pa.field(Column.ERROR_KIND, pa.string()),
    pa.field(Column.ERROR, pa.string()),
    pa.field(Column.SHA256, pa.string()),
    pa.field(Column.PDQ, pa.string()),
    pa.field(Column.PDQ_QUALITY, pa.int32()),
    pa.field(Column.YAHOO_PDQ, pa.string()),
    pa.field(Column.YAHOO_PDQ_QUALITY, pa.int32()),
    pa.field(Column.MATCH, pa.string()),
    pa.field(Column.MATCH_DISTANCE, pa.int32()),
    pa.field(Column.MATCH_CHECKED, pa.bool_()),
    pa.field(Column.BYTES, pa.int64()),
    pa.field(Column.WIDTH, pa.int32()),
    pa.field(Column.HEIGHT, pa.int32()),
    pa.field(Column.FRAMES, pa.int32()),
    pa.field(Column.VIEWS, pa.int32()),
    pa.field(Column.VIEW, pa.string()),
    pa.field(Column.VIEW_SCORE, pa.float32()),
    pa.field(Column.YAHOO_SCORE, pa.float32()),
    pa.field(Column.EXACT, pa.bool_()),
    pa.field(Column.LOADER, pa.string()),
    pa.field(Column.MODEL, pa.string()),
    pa.field(Column.SOURCE_MANIFEST, pa.string()),
    pa.field(Column.SOURCE_LINE, pa.int64()),
    pa.field(Column.DUPLICATES, pa.int32()),
    pa.field(Column.SCORED_AT, pa.timestamp("us", tz="UTC")),
]
RESERVED = {Column.URI, *(f.name for f in RESULT_FIELDS)}  # names a manifest's own column cannot have

# Groups of columns, by what the steps that read or copy rows need of them.
# each hash a row has and its quality: the flagged view's, then Yahoo's view's
HASH_COLUMNS = ((Column.PDQ, Column.PDQ_QUALITY), (Column.YAHOO_PDQ, Column.YAHOO_PDQ_QUALITY))
HASH_FACTS = tuple(name for pair in HASH_COLUMNS for name in pair)
# what the views scored say of a file
VIEW_FACTS = (Column.FRAMES, Column.VIEWS, Column.VIEW, Column.VIEW_SCORE, Column.YAHOO_SCORE, Column.EXACT,
              *HASH_FACTS)
MATCH_FACTS = (Column.MATCH, Column.MATCH_DISTANCE, Column.MATCH_CHECKED)
# where a row's line came from, and what it is not scored again for
SOURCE_COLUMNS = (Column.SOURCE_MANIFEST, Column.SOURCE_LINE)
# what a row scored for its content gives the other rows of this run with the same bytes
COPIED_TO_SAME_CONTENT = (Column.SCORE, Column.DECISION, Column.SAFE_BELOW, Column.NSFW_FROM, Column.ERROR_KIND,
                          Column.ERROR, Column.WIDTH, Column.HEIGHT, *VIEW_FACTS, *MATCH_FACTS, Column.LOADER,
                          Column.MODEL, Column.SCORED_AT)
# what an earlier run's row gives a row of the same content
REUSED_FROM_EARLIER = (Column.SHA256, Column.SCORE, Column.WIDTH, Column.HEIGHT, *VIEW_FACTS, Column.MODEL,
                       Column.LOADER)
# what scoring a row's file again gives it (its URI, manifest columns, source and duplicates stay)
SCORED_AGAIN = tuple(f.name for f in RESULT_FIELDS if f.name not in (*SOURCE_COLUMNS, Column.DUPLICATES))
# what tells which manifest lines earlier runs have done
DONE_KEY_COLUMNS = (Column.URI, Column.DECISION, *SOURCE_COLUMNS)
# a row matched by a hash list, as the report lists it
MATCH_REPORT_COLUMNS = (Column.URI, Column.MATCH, Column.MATCH_DISTANCE, Column.SCORE, Column.DECISION, Column.VIEW,
                        Column.PDQ)


def output_schema(passthrough: dict[str, pa.DataType]) -> pa.Schema:
    """``uri``, then the manifests' own columns (in manifest order), then the result columns."""
    return pa.schema([pa.field(Column.URI, pa.string())]
                     + [pa.field(name, dtype) for name, dtype in passthrough.items()]
                     + RESULT_FIELDS)
