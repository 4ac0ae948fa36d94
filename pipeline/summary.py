"""The end-of-run summary: the rows from what the run's result files hold, everything else from
Beam's metrics (no second pass over the data).

A runner that retried work (a lost TaskManager or executor) may report its counters as
attempted, counting the retried work twice; the rows are counted from the files, and a run whose
counters then do not add up keeps its rows and says what did not (``accounting_problem``)."""

from __future__ import annotations

import json

from apache_beam.metrics.metric import MetricsFilter

from ..model.decision import DECISIONS
from ..model.errors import BAD_MANIFEST_LINE, RETRYABLE
from ..storage.filesystems import FileSystems
from ..storage.layout import SUMMARY_FILE
from ..transforms import metrics
from ..transforms.metrics import CONTINUED, ENTRIES, HEADERS, LINES, NAMESPACE, SKIPPED


def _query(result, kind: str):
    for metric in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))[kind]:
        yield metric.key.metric.name, metric.committed if metric.committed is not None else metric.attempted


def counters_attempted(results) -> bool:
    """Whether a runner reported any counter as attempted only (no committed value)."""
    return any(metric.committed is None
               for result in results
               for metric in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"])


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
            if name == metrics.MODEL_LOAD_MS and value and value.count:
                count += value.count
                seconds += value.max / 1000
    return count, seconds


def accounting(c: dict[str, int], rows: int, bad: int) -> dict[str, int]:
    """What became of every physical line of the manifests: ``lines`` is the sum of the others
    when none was lost (each entry is a row with a URI, a bad line's row, a duplicate or a URI
    earlier runs covered; rows without a manifest line do not exist). ``rows`` and ``bad``:
    the rows written, and those of bad lines among them."""
    return {"lines": c.get(LINES, 0), "rows": rows - bad, "bad_lines": bad, "duplicates": c.get(metrics.DUPLICATES, 0),
            "already_done": c.get(metrics.ALREADY_DONE, 0), "blank_or_comment": c.get(SKIPPED, 0),
            "headers": c.get(HEADERS, 0), "continued": c.get(CONTINUED, 0)}


def accounting_problem(summary: dict) -> str | None:
    """What does not add up when the lines read are not all accounted for, else None. Every row
    written is kept either way: a line without a row is scored by the same command run again."""
    a = summary["accounting"]
    accounted = sum(n for name, n in a.items() if name != "lines")
    entries = a["rows"] + a["bad_lines"] + a["duplicates"] + a["already_done"]
    if accounted == a["lines"] and summary["manifest_rows"] == entries:
        return None
    retried = (" The runner reports its counters as attempted: work it retried (a lost worker) is counted twice there, "
               "while the rows are counted from the files." if summary.get("counters_attempted") else "")
    return (f"the manifests' lines do not add up: {a['lines']} read, {accounted} accounted for ({_equation(a)}), "
            f"{summary['manifest_rows']} entries.{retried} Every row written is kept; the same command run again "
            f"scores any line that has no row (lines with one are already done)")


def _equation(a: dict) -> str:
    return (f"{a['rows']} rows + {a['bad_lines']} bad lines + {a['duplicates']} duplicates + "
            f"{a['already_done']} already in earlier runs + {a['blank_or_comment']} blank or comment + "
            f"{a['headers']} headers + {a['continued']} inside multi-line fields")


MIN_RATE_SECONDS = 1.0  # a rate over a shorter time (a handful of images) says nothing: none is given


def _rate(images: int, seconds: float) -> float | None:
    return round(images / seconds, 2) if images and seconds >= MIN_RATE_SECONDS else None


def _rates(summary: dict) -> str:
    """The time line's rates, or why there are none."""
    if summary["images_per_s"] is None:
        return "too few images for a rate"
    after = summary["images_per_s_after_load"]
    return (f"{summary['images_per_s']} images/s"
            + (f" ({after} after the model load of {summary['model_load_seconds']} s)" if after is not None else
               f" (model load {summary['model_load_seconds']} s)"))


def summarize(results, seconds: float, extra: dict, written) -> dict:
    """``results``: the PipelineResult of each pipeline the run was made of; ``written``: what
    their result files hold (``storage.results_folder.Written``)."""
    c = counters(results)
    loads, load = model_loads(results)
    decisions = {d: written.decisions.get(d, 0) for d in DECISIONS}
    errors = dict(sorted(written.errors.items()))
    scored = decisions["safe"] + decisions["review"] + decisions["nsfw"]
    return {
        **extra,
        "manifest_lines": c.get(LINES, 0),
        "manifest_rows": c.get(ENTRIES, 0),
        "duplicates": c.get(metrics.DUPLICATES, 0),
        "already_done": c.get(metrics.ALREADY_DONE, 0),
        "content_duplicates": c.get(metrics.CONTENT_DUPLICATES, 0),
        "content_reused": c.get(metrics.CONTENT_REUSED, 0),
        "rescored": c.get(metrics.RESCORED, 0),
        "first_pass_precisions": metrics.chosen_precisions(c),  # chosen by measurement, per worker process
        "matched": c.get(metrics.MATCHED, 0),
        "not_matchable": c.get(metrics.NOT_MATCHABLE, 0),
        "rows": sum(decisions.values()),
        "scored": scored,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "decisions": decisions,
        "bytes_read": c.get(metrics.BYTES_READ, 0),
        "model_loads": loads,
        "seconds": round(seconds, 2),
        "images_per_s": _rate(scored, seconds),
        "model_load_seconds": round(load, 2),
        "images_per_s_after_load": _rate(scored, seconds - load),
        "accounting": accounting(c, sum(decisions.values()), errors.get(BAD_MANIFEST_LINE, 0)),
        "counters_attempted": counters_attempted(results),
    }


def write_summary(directory: str, summary: dict) -> str:
    path = FileSystems.join(directory, SUMMARY_FILE)
    with FileSystems.create(path) as f:
        f.write(json.dumps(summary, indent=2).encode() + b"\n")
    return path


def read_summary(directory: str) -> dict | None:
    """The summary in ``directory``, or None where there is none (or none readable)."""
    try:
        with FileSystems.open(FileSystems.join(directory, SUMMARY_FILE)) as f:
            return json.loads(f.read())
    except Exception:  # no summary yet, or one cut short: there is nothing to carry on
        return None


def latest_results(previous: dict | None) -> dict | None:
    """The summary of the latest run that wrote rows, from the folder's summary before this run:
    that summary itself, or the one it carried (a run with nothing new carries it on, so the
    folder's summary never loses it)."""
    if not previous:
        return None
    return previous if previous.get("results") else previous.get("latest_results")


def thresholds_text(safe_below, nsfw_from) -> str:
    return "not recorded" if safe_below is None else f"{safe_below:g}/{nsfw_from:g}"


def _threshold_lines(summary: dict) -> list[str]:
    """This run's thresholds, and the earlier rows in the folder decided at others, with the
    command that decides them at this run's."""
    thresholds = summary.get("thresholds")
    if not thresholds:
        return []
    line = f"thresholds     safe below {thresholds['safe_below']:g}, nsfw from {thresholds['nsfw_from']:g}"
    others = summary.get("earlier_thresholds")
    if not others:
        return [line]
    rows = sum(other["rows"] for other in others)
    found = ", ".join(f"{thresholds_text(o['safe_below'], o['nsfw_from'])}: {o['rows']}" for o in others)
    return [line + f"; {rows} earlier rows in the folder were decided at others ({found})",
            f"               to decide them at these: nsfw-scan redecide {summary['output']}"
            + (f" --config {summary['config']}" if summary.get("config") else " (the default thresholds)")]


def _retry_lines(summary: dict) -> list[str]:
    """Error rows that may pass if read again (``model.errors.RETRYABLE``), this run's and those of
    earlier runs in the folder, with what to change and the flag that reads them again."""
    lines = []
    for label, found in (("this run", summary.get("retryable")), ("earlier runs", summary.get("retryable_earlier"))):
        if found:
            lines.append(f"retryable      {sum(found.values())} error rows of {label} may pass if read again ("
                         + ", ".join(f"{kind} {n}" for kind, n in found.items()) + ")")
    if lines:
        kinds = {**(summary.get("retryable_earlier") or {}), **(summary.get("retryable") or {})}
        lines.append("               " + "; ".join(RETRYABLE[kind] for kind in kinds)
                     + "; then run the same command with --rescore-errors to read them again")
    return lines


def _match_lines(summary: dict) -> list[str]:
    """Rows the hash list matched, and rows whose hashes were too poor to be matched."""
    if not summary.get("match_list"):
        return []
    lines = [f"known content  {summary.get('matched', 0)} rows matched the hash list {summary['match_list']} "
             f"(column match); {summary.get('not_matchable', 0)} decoded rows had no hash good enough to match "
             f"(match_checked false)"]
    if summary.get("already_done"):
        lines.append(f"               the {summary['already_done']} URIs already in earlier runs were not matched "
                     f"against this list; to match their rows: nsfw-scan match {summary['output']} "
                     f"--match-list {summary['match_list']}")
    return lines


def _nothing_new(summary: dict) -> str:
    latest = summary.get("latest_results")
    return "none written: nothing new to score" + (
        f" (the latest results are {latest['results']}; their summary is under latest_results in "
        f"{summary['output'].rstrip('/')}/{SUMMARY_FILE})" if latest else "")


def nothing_scored(summary: dict) -> str | None:
    """A warning when every row the run wrote is an error (a manifest of wrong paths, a network
    that refuses every read, ...): the run's rows are kept, but a scheduler should hear of it."""
    if not summary.get("rows") or summary.get("scored"):
        return None
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary["errors_by_kind"].items(), key=lambda kv: -kv[1]))
    return (f"every one of the {summary['rows']} rows this run wrote is an error ({kinds}): nothing was scored; "
            f"the errors are listed by nsfw-scan report {summary['output']} (errors.csv); once the inputs are "
            f"fixed, the same command with --rescore-errors reads them again")


def _chosen(precisions: dict[str, int] | None) -> str:
    """The first pass's precisions chosen by measurement, and in how many worker processes."""
    if not precisions:
        return ""
    return "; first pass in " + ", ".join(f"{p} ({n} worker process{'es' if n > 1 else ''})"
                                          for p, n in precisions.items()) + " as measured fastest on the CPU"


def format_summary(summary: dict) -> str:
    d, e = summary["decisions"], summary["errors_by_kind"]
    lines = [
        f"rows written   {summary['rows']}  (manifest entries {summary['manifest_rows']}, "
        f"duplicates {summary['duplicates']}, already in earlier runs {summary['already_done']})",
        f"lines read     {summary['accounting']['lines']} = {_equation(summary['accounting'])}",
        f"scored         {summary['scored']}  safe {d['safe']}, review {d['review']}, nsfw {d['nsfw']}"
        + (f"  (identical content: {summary['content_duplicates']} shared this run's result, "
           f"{summary['content_reused']} reused an earlier run's)"
           if summary["content_duplicates"] or summary["content_reused"] else ""),
        f"errors         {summary['errors']}" + ("  " + ", ".join(f"{k} {v}" for k, v in e.items()) if e else ""),
        *([f"cascade        {summary['rescored']} of {summary['rows']} rows near a threshold or not decoded "
           f"scored again by the exact steps; the other rows' scores are the first pass's (column exact false)"
           + _chosen(summary.get("first_pass_precisions"))]
          if summary.get("cascade") else []),
        *_match_lines(summary),
        f"time           {summary['seconds']} s, {_rates(summary)}, model loads {summary['model_loads']}",
        *([f"salvaged       {summary['salvaged_rows']} rows kept from a run that did not finish (in the already done)"]
          if summary.get("salvaged_rows") else []),
        *_threshold_lines(summary),
        *_retry_lines(summary),
        *([f"accounting     {summary['accounting_problem']}"] if summary.get("accounting_problem") else []),
        f"results        {summary['results'] or _nothing_new(summary)}",
        f"report         nsfw-scan report {summary['output']}",
    ]
    return "\n".join(lines)
