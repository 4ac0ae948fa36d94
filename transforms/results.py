"""The output row: its Parquet schema (defined once, here) and how rows are made.

Columns, in order: ``uri``, the manifests' pass-through columns, then ``score``, ``decision``,
``error``, ``sha256``, ``bytes``, ``width``, ``height``, ``loader``, ``model``, ``scored_at``,
``duplicates``.
"""

from __future__ import annotations

import datetime

import pyarrow as pa

RESULT_FIELDS = [
    pa.field("score", pa.float32()),
    pa.field("decision", pa.string()),
    pa.field("error", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("bytes", pa.int64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("loader", pa.string()),
    pa.field("model", pa.string()),
    pa.field("scored_at", pa.timestamp("us", tz="UTC")),
    # other lines of this run's manifests that named the same URI (the row has the first's columns)
    pa.field("duplicates", pa.int32()),
]
RESERVED = {"uri", *(f.name for f in RESULT_FIELDS)}


def output_schema(passthrough: dict[str, pa.DataType]) -> pa.Schema:
    """``uri``, then the manifests' own columns (in manifest order), then the result columns."""
    return pa.schema([pa.field("uri", pa.string())]
                     + [pa.field(name, dtype) for name, dtype in passthrough.items()]
                     + RESULT_FIELDS)


def base_row(uri: str | None, columns: dict, loader: str, model: str, duplicates: int = 0) -> dict:
    """A row with every result column empty; steps fill in what they learn."""
    row = {"uri": uri, **columns}
    row.update({f.name: None for f in RESULT_FIELDS})
    row["loader"], row["model"], row["duplicates"] = loader, model, duplicates
    return row


def finish(row: dict, *, score: float | None = None, decision: str, error: str | None = None) -> dict:
    row = dict(row, score=score, decision=decision, error=error)
    row["scored_at"] = datetime.datetime.now(datetime.timezone.utc)
    return row


def error_kind(row: dict) -> str | None:
    return row["error"].split(":", 1)[0] if row.get("error") else None
