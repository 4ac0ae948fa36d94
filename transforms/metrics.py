"""The job's Beam metrics: their names, defined once, here, for the steps that count and for
``pipeline/summary.py``, which reads them back into the summary.

Manifests' physical lines (text lines, or Parquet rows), by what became of them:
``LINES = HEADERS + SKIPPED + CONTINUED + ENTRIES`` (``ENTRIES`` also counts Parquet rows).

The names import no Beam (the manifest readers that ``nsfw-scan score`` reaches name them);
the counters, made in the steps, do.
"""

from __future__ import annotations

NAMESPACE = "nsfw_scan"

LINES = "manifest_lines"
HEADERS = "manifest_header_lines"
SKIPPED = "manifest_blank_lines"
CONTINUED = "manifest_continued_lines"  # inside a quoted multi-line CSV field
ENTRIES = "manifest_rows"
LINE_COUNTERS = (LINES, HEADERS, SKIPPED, CONTINUED, ENTRIES)

DUPLICATES = "duplicates"  # further lines naming a URI this run already has
ALREADY_DONE = "already_done"  # URIs an earlier run in the output folder covers
CONTENT_DUPLICATES = "content_duplicates"  # rows that shared another entry's result (same bytes)
CONTENT_REUSED = "content_reused"  # rows that reused an earlier run's result for the same bytes
RESCORED = "rescored"  # rows of the cascade's first pass made again by the exact steps
BYTES_READ = "bytes_read"
MATCHED = "matched"  # rows matched by the hash list (column match)
NOT_MATCHABLE = "not_matchable"  # decoded rows with no hash good enough to match (match_checked false)
# One entry per model load, in ms, reported by the scorer itself at its first batch: the
# summary's model loads (count) and load time (max), and the "loaded" log line, all come from
# it, so a model that never scored (nothing new to score) is in none of them. Beam's own
# load_model_latency metric misses loads made in another process (``model_sharing``).
MODEL_LOAD_MS = "model_load_ms"

_DECISION, _ERROR = "decision_", "error_"  # finished rows per decision and per error kind
_CHOSEN = "first_pass_chosen_"  # worker processes whose first pass chose each precision (``model.precision``)


def decision_counter(decision: str) -> str:
    return _DECISION + decision


def error_counter(kind: str) -> str:
    return _ERROR + kind


def precision_counter(precision: str) -> str:
    return _CHOSEN + precision


def chosen_precisions(counters: dict[str, int]) -> dict[str, int]:
    """Worker processes per precision their first pass chose by measurement, from the counters."""
    return {name[len(_CHOSEN):]: n for name, n in sorted(counters.items()) if name.startswith(_CHOSEN)}


def counter(name: str):
    """The job's Beam counter ``name``."""
    from apache_beam.metrics import Metrics

    return Metrics.counter(NAMESPACE, name)


def distribution(name: str):
    """The job's Beam distribution ``name``."""
    from apache_beam.metrics import Metrics

    return Metrics.distribution(NAMESPACE, name)
