"""The end-of-run summary, from Beam's metrics (no second pass over the data)."""

from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter

from ..model.decision import DECISIONS
from ..transforms.manifests import NAMESPACE
from ..transforms.scoring import MODEL_LOAD_MS
from ..storage.layout import SUMMARY_FILE


def _query(result, kind: str):
    for metric in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))[kind]:
        yield metric.key.metric.name, metric.committed if metric.committed is not None else metric.attempted


def counters(results) -> dict[str, int]:
    totals: dict[str, int] = {}
    for result in results:
        for name, value in _query(result, "counters"):
            totals[name] = totals.get(name, 0) + (value or 0)
    return totals


def model_loads(results) -> tuple[int, float]:
    """How many models were loaded, and the time spent loading: per pipeline the longest load
    (loads in parallel workers overlap), added up over the pipelines of a partitioned run."""
    count, seconds = 0, 0.0
    for result in results:
        for name, value in _query(result, "distributions"):
            if name == MODEL_LOAD_MS and value and value.count:
                count += value.count
                seconds += value.max / 1000
    return count, seconds


def _decisions(c: dict[str, int]) -> dict[str, int]:
    return {d: c.get(f"decision_{d}", 0) for d in DECISIONS}


def rows_written(results) -> int:
    """Rows the pipelines wrote (every row gets a decision, ``error`` included)."""
    return sum(_decisions(counters(results)).values())


def summarize(results, seconds: float, extra: dict) -> dict:
    """``results``: the PipelineResult of each pipeline the run was made of."""
    c = counters(results)
    loads, load = model_loads(results)
    decisions = _decisions(c)
    scored = decisions["safe"] + decisions["review"] + decisions["nsfw"]
    errors = {name[len("error_"):]: n for name, n in sorted(c.items()) if name.startswith("error_")}
    return {
        **extra,
        "manifest_rows": c.get("manifest_rows", 0),
        "duplicates": c.get("duplicates", 0),
        "already_done": c.get("already_done", 0),
        "content_duplicates": c.get("content_duplicates", 0),
        "content_reused": c.get("content_reused", 0),
        "rows": sum(decisions.values()),
        "scored": scored,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "decisions": decisions,
        "bytes_read": c.get("bytes_read", 0),
        "model_loads": loads,
        "seconds": round(seconds, 2),
        "images_per_s": round(scored / seconds, 2) if seconds > 0 else None,
        "model_load_seconds": round(load, 2),
        "images_per_s_after_load": round(scored / (seconds - load), 2) if seconds > load else None,
    }


def write_summary(directory: str, summary: dict) -> str:
    path = FileSystems.join(directory, SUMMARY_FILE)
    with FileSystems.create(path) as f:
        f.write(json.dumps(summary, indent=2).encode() + b"\n")
    return path


def format_summary(summary: dict) -> str:
    d, e = summary["decisions"], summary["errors_by_kind"]
    lines = [
        f"rows written   {summary['rows']}  (manifest lines {summary['manifest_rows']}, "
        f"duplicates {summary['duplicates']}, already in earlier runs {summary['already_done']})",
        f"scored         {summary['scored']}  safe {d['safe']}, review {d['review']}, nsfw {d['nsfw']}"
        + (f"  (identical content: {summary['content_duplicates']} shared this run's result, "
           f"{summary['content_reused']} reused an earlier run's)"
           if summary["content_duplicates"] or summary["content_reused"] else ""),
        f"errors         {summary['errors']}" + ("  " + ", ".join(f"{k} {v}" for k, v in e.items()) if e else ""),
        f"time           {summary['seconds']} s, {summary['images_per_s']} images/s "
        f"({summary['images_per_s_after_load']} after the model load of {summary['model_load_seconds']} s), "
        f"model loads {summary['model_loads']}",
        *([f"salvaged       {summary['salvaged_rows']} rows kept from a run that did not finish (in the already done)"]
          if summary.get("salvaged_rows") else []),
        f"results        {summary['results'] or 'none written: nothing new to score'}",
        f"report         nsfw-scan report {summary['output']}",
    ]
    return "\n".join(lines)
