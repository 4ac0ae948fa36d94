"""The end-of-run summary: the rows from what the run's result files hold, everything else from
Beam's metrics (no second pass over the data).

A runner that retried work (a lost TaskManager or executor) may report its counters as
attempted, counting the retried work twice; the rows are counted from the files, and a run whose
counters then do not add up keeps its rows and says what did not (``accounting_problem``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from apache_beam.metrics.metric import MetricsFilter

from ..model.decision import DECISIONS, Thresholds
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


MIN_RATE_SECONDS = 1.0  # a rate over a shorter time (a handful of images) says nothing: none is given


def _rate(images: int, seconds: float) -> float | None:
    return round(images / seconds, 2) if images and seconds >= MIN_RATE_SECONDS else None



@dataclasses.dataclass(frozen=True)
class Accounting:
    """What became of every physical line of the manifests: ``lines`` is the sum of the others
    when none was lost (each entry is a row with a URI, a bad line's row, a duplicate or a URI
    earlier runs covered; rows without a manifest line do not exist)."""

    lines: int = 0
    rows: int = 0  # rows written, bad lines' excluded
    bad_lines: int = 0
    duplicates: int = 0
    already_done: int = 0
    blank_or_comment: int = 0
    headers: int = 0
    continued: int = 0

    @classmethod
    def of(cls, c: dict[str, int], rows: int, bad: int) -> Accounting:
        """From the counters ``c``; ``rows`` and ``bad``: the rows written, and those of bad lines among them."""
        return cls(lines=c.get(LINES, 0), rows=rows - bad, bad_lines=bad, duplicates=c.get(metrics.DUPLICATES, 0),
                   already_done=c.get(metrics.ALREADY_DONE, 0), blank_or_comment=c.get(SKIPPED, 0),
                   headers=c.get(HEADERS, 0), continued=c.get(CONTINUED, 0))

    @property
    def accounted(self) -> int:
        """The lines accounted for: every count but ``lines``."""
        return sum(dataclasses.astuple(self)) - self.lines

    @property
    def entries(self) -> int:
        """The manifest entries they account for."""
        return self.rows + self.bad_lines + self.duplicates + self.already_done

    def equation(self) -> str:
        return (f"{self.rows} rows + {self.bad_lines} bad lines + {self.duplicates} duplicates + "
                f"{self.already_done} already in earlier runs + {self.blank_or_comment} blank or comment + "
                f"{self.headers} headers + {self.continued} inside multi-line fields")


@dataclasses.dataclass(frozen=True)
class EarlierThresholds:
    """Earlier rows in the folder decided at other thresholds than a run's (None: not recorded)."""

    safe_below: float | None
    nsfw_from: float | None
    rows: int


@dataclasses.dataclass(frozen=True)
class RunSummary(Mapping):
    """What a run did, as ``_SUMMARY.json`` holds it: the fields in the file's order, one key
    each (``accounting_problem`` and ``latest_results`` only where they are not None). Read
    by key too, as the JSON it writes (``summary["rows"]``)."""

    output: str = ""
    results: str | None = None  # this run's folder(s), None when it wrote no row
    model: str | None = None
    loader: str | None = None
    views: str | None = None
    thresholds: Thresholds | None = None
    config: str | None = None  # the --config the run was given
    cascade: bool = False
    match_list: str | None = None
    manifests: int = 0  # manifest files read
    runner: str | None = None
    engine: str | None = None
    partitions: int = 1
    earlier_result_files: int = 0
    salvaged_rows: int = 0
    manifest_lines: int = 0
    manifest_rows: int = 0
    duplicates: int = 0
    already_done: int = 0
    content_duplicates: int = 0
    content_reused: int = 0
    rescored: int = 0
    first_pass_precisions: dict[str, int] = dataclasses.field(default_factory=dict)
    matched: int = 0
    not_matchable: int = 0
    rows: int = 0
    scored: int = 0
    errors: int = 0
    errors_by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    decisions: dict[str, int] = dataclasses.field(default_factory=dict)
    bytes_read: int = 0
    model_loads: int = 0
    seconds: float = 0.0
    images_per_s: float | None = None
    model_load_seconds: float = 0.0
    images_per_s_after_load: float | None = None
    accounting: Accounting = Accounting()
    counters_attempted: bool = False
    # error rows that may pass if read again: this run's, and earlier runs' still in the folder
    retryable: dict[str, int] = dataclasses.field(default_factory=dict)
    retryable_earlier: dict[str, int] = dataclasses.field(default_factory=dict)
    accounting_problem: str | None = None
    earlier_thresholds: list[EarlierThresholds] = dataclasses.field(default_factory=list)
    # a run with nothing new carries the summary of the latest run that wrote rows
    latest_results: RunSummary | None = None

    def to_json(self) -> dict:
        """The summary as ``_SUMMARY.json`` holds it."""
        return {f.name: _json_value(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None or f.name not in _ONLY_IF_SET}

    @classmethod
    def from_json(cls, data: Mapping) -> RunSummary:
        """A summary from its JSON; keys an older version did not write take their defaults,
        keys this one does not know are left out."""
        values = _known(cls, data)
        for name, read in _READ.items():
            if values.get(name) is not None:
                values[name] = read(values[name])
        return cls(**values)

    def __getitem__(self, key: str):
        return self.to_json()[key]

    def __iter__(self):
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())

    def __eq__(self, other) -> bool:
        """Equal to a summary, or to a mapping such as the JSON it was written as, that holds the same."""
        if isinstance(other, Mapping):
            return self.to_json() == (other.to_json() if isinstance(other, RunSummary) else dict(other))
        return NotImplemented

    __hash__ = None  # it holds dicts


_ONLY_IF_SET = ("accounting_problem", "latest_results")  # RunSummary's keys written only when not None


def _known(cls, data: Mapping) -> dict:
    """The keys of ``data`` that are fields of the dataclass ``cls``."""
    return {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}


# how RunSummary.from_json reads the fields that are not JSON values themselves
_READ = {
    "thresholds": lambda data: Thresholds(**_known(Thresholds, data)),
    "accounting": lambda data: Accounting(**_known(Accounting, data)),
    "earlier_thresholds": lambda found: [EarlierThresholds(**_known(EarlierThresholds, o)) for o in found],
    "latest_results": RunSummary.from_json,
}


def _json_value(value):
    if isinstance(value, RunSummary):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def as_summary(summary: Mapping) -> RunSummary:
    """A ``RunSummary``, from one or from its JSON."""
    return summary if isinstance(summary, RunSummary) else RunSummary.from_json(summary)


def accounting_problem(summary: Mapping) -> str | None:
    """What does not add up when the lines read are not all accounted for, else None. Every row
    written is kept either way: a line without a row is scored by the same command run again."""
    summary = as_summary(summary)
    a = summary.accounting
    if a.accounted == a.lines and summary.manifest_rows == a.entries:
        return None
    retried = (" The runner reports its counters as attempted: work it retried (a lost worker) is counted twice there, "
               "while the rows are counted from the files." if summary.counters_attempted else "")
    return (f"the manifests' lines do not add up: {a.lines} read, {a.accounted} accounted for ({a.equation()}), "
            f"{summary.manifest_rows} entries.{retried} Every row written is kept; the same command run again "
            f"scores any line that has no row (lines with one are already done)")


def summarize(results, seconds: float, written, **run) -> RunSummary:
    """``results``: the PipelineResult of each pipeline the run was made of; ``written``: what
    their result files hold (``storage.results_folder.Written``); ``run``: the summary's fields that
    say what was run (output, model, ...)."""
    c = counters(results)
    loads, load = model_loads(results)
    decisions = {d: written.decisions.get(d, 0) for d in DECISIONS}
    errors = dict(sorted(written.errors.items()))
    scored = decisions["safe"] + decisions["review"] + decisions["nsfw"]
    return RunSummary(
        **run,
        manifest_lines=c.get(LINES, 0),
        manifest_rows=c.get(ENTRIES, 0),
        duplicates=c.get(metrics.DUPLICATES, 0),
        already_done=c.get(metrics.ALREADY_DONE, 0),
        content_duplicates=c.get(metrics.CONTENT_DUPLICATES, 0),
        content_reused=c.get(metrics.CONTENT_REUSED, 0),
        rescored=c.get(metrics.RESCORED, 0),
        first_pass_precisions=metrics.chosen_precisions(c),  # chosen by measurement, per worker process
        matched=c.get(metrics.MATCHED, 0),
        not_matchable=c.get(metrics.NOT_MATCHABLE, 0),
        rows=sum(decisions.values()),
        scored=scored,
        errors=sum(errors.values()),
        errors_by_kind=errors,
        decisions=decisions,
        bytes_read=c.get(metrics.BYTES_READ, 0),
        model_loads=loads,
        seconds=round(seconds, 2),
        images_per_s=_rate(scored, seconds),
        model_load_seconds=round(load, 2),
        images_per_s_after_load=_rate(scored, seconds - load),
        accounting=Accounting.of(c, sum(decisions.values()), errors.get(BAD_MANIFEST_LINE, 0)),
        counters_attempted=counters_attempted(results),
    )


def write_summary(directory: str, summary: RunSummary) -> str:
    path = FileSystems.join(directory, SUMMARY_FILE)
    with FileSystems.create(path) as f:
        f.write(json.dumps(summary.to_json(), indent=2).encode() + b"\n")
    return path


def read_summary(directory: str) -> RunSummary | None:
    """The summary in ``directory``, or None where there is none (or none readable)."""
    try:
        with FileSystems.open(FileSystems.join(directory, SUMMARY_FILE)) as f:
            return RunSummary.from_json(json.loads(f.read()))
    except Exception:  # no summary yet, or one cut short: there is nothing to carry on
        return None


def latest_results(previous: RunSummary | None) -> RunSummary | None:
    """The summary of the latest run that wrote rows, from the folder's summary before this run:
    that summary itself, or the one it carried (a run with nothing new carries it on, so the
    folder's summary never loses it)."""
    if previous is None:
        return None
    return previous if previous.results else previous.latest_results


def thresholds_text(safe_below, nsfw_from) -> str:
    return "not recorded" if safe_below is None else f"{safe_below:g}/{nsfw_from:g}"


def _rates(summary: RunSummary) -> str:
    """The time line's rates, or why there are none."""
    if summary.images_per_s is None:
        return "too few images for a rate"
    after = summary.images_per_s_after_load
    return (f"{summary.images_per_s} images/s"
            + (f" ({after} after the model load of {summary.model_load_seconds} s)" if after is not None else
               f" (model load {summary.model_load_seconds} s)"))


def _threshold_lines(summary: RunSummary) -> list[str]:
    """This run's thresholds, and the earlier rows in the folder decided at others, with the
    command that decides them at this run's."""
    thresholds = summary.thresholds
    if not thresholds:
        return []
    line = f"thresholds     safe below {thresholds.safe_below:g}, nsfw from {thresholds.nsfw_from:g}"
    others = summary.earlier_thresholds
    if not others:
        return [line]
    rows = sum(other.rows for other in others)
    found = ", ".join(f"{thresholds_text(o.safe_below, o.nsfw_from)}: {o.rows}" for o in others)
    return [line + f"; {rows} earlier rows in the folder were decided at others ({found})",
            f"               to decide them at these: nsfw-scan redecide {summary.output}"
            + (f" --config {summary.config}" if summary.config else " (the default thresholds)")]


def _retry_lines(summary: RunSummary) -> list[str]:
    """Error rows that may pass if read again (``model.errors.RETRYABLE``), this run's and those of
    earlier runs in the folder, with what to change and the flag that reads them again."""
    lines = []
    for label, found in (("this run", summary.retryable), ("earlier runs", summary.retryable_earlier)):
        if found:
            lines.append(f"retryable      {sum(found.values())} error rows of {label} may pass if read again ("
                         + ", ".join(f"{kind} {n}" for kind, n in found.items()) + ")")
    if lines:
        kinds = {**summary.retryable_earlier, **summary.retryable}
        lines.append("               " + "; ".join(RETRYABLE[kind] for kind in kinds)
                     + "; then run the same command with --rescore-errors to read them again")
    return lines


def _match_lines(summary: RunSummary) -> list[str]:
    """Rows the hash list matched, and rows whose hashes were too poor to be matched."""
    if not summary.match_list:
        return []
    lines = [f"known content  {summary.matched} rows matched the hash list {summary.match_list} "
             f"(column match); {summary.not_matchable} decoded rows had no hash good enough to match "
             f"(match_checked false)"]
    if summary.already_done:
        lines.append(f"               the {summary.already_done} URIs already in earlier runs were not matched "
                     f"against this list; to match their rows: nsfw-scan match {summary.output} "
                     f"--match-list {summary.match_list}")
    return lines


def _nothing_new(summary: RunSummary) -> str:
    latest = summary.latest_results
    return "none written: nothing new to score" + (
        f" (the latest results are {latest.results}; their summary is under latest_results in "
        f"{summary.output.rstrip('/')}/{SUMMARY_FILE})" if latest else "")


def nothing_scored(summary: Mapping) -> str | None:
    """A warning when every row the run wrote is an error (a manifest of wrong paths, a network
    that refuses every read, ...): the run's rows are kept, but a scheduler should hear of it."""
    summary = as_summary(summary)
    if not summary.rows or summary.scored:
        return None
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.errors_by_kind.items(), key=lambda kv: -kv[1]))
    return (f"every one of the {summary.rows} rows this run wrote is an error ({kinds}): nothing was scored; "
            f"the errors are listed by nsfw-scan report {summary.output} (errors.csv); once the inputs are "
            f"fixed, the same command with --rescore-errors reads them again")


def _chosen(precisions: dict[str, int] | None) -> str:
    """The first pass's precisions chosen by measurement, and in how many worker processes."""
    if not precisions:
        return ""
    return "; first pass in " + ", ".join(f"{p} ({n} worker process{'es' if n > 1 else ''})"
                                          for p, n in precisions.items()) + " as measured fastest on the CPU"


def format_summary(summary: Mapping) -> str:
    s = as_summary(summary)
    d, e, a = s.decisions, s.errors_by_kind, s.accounting
    lines = [
        f"rows written   {s.rows}  (manifest entries {s.manifest_rows}, "
        f"duplicates {s.duplicates}, already in earlier runs {s.already_done})",
        f"lines read     {a.lines} = {a.equation()}",
        f"scored         {s.scored}  safe {d['safe']}, review {d['review']}, nsfw {d['nsfw']}"
        + (f"  (identical content: {s.content_duplicates} shared this run's result, "
           f"{s.content_reused} reused an earlier run's)"
           if s.content_duplicates or s.content_reused else ""),
        f"errors         {s.errors}" + ("  " + ", ".join(f"{k} {v}" for k, v in e.items()) if e else ""),
        *([f"cascade        {s.rescored} of {s.rows} rows near a threshold or not decoded "
           f"scored again by the exact steps; the other rows' scores are the first pass's (column exact false)"
           + _chosen(s.first_pass_precisions)]
          if s.cascade else []),
        *_match_lines(s),
        f"time           {s.seconds} s, {_rates(s)}, model loads {s.model_loads}",
        *([f"salvaged       {s.salvaged_rows} rows kept from a run that did not finish (in the already done)"]
          if s.salvaged_rows else []),
        *_threshold_lines(s),
        *_retry_lines(s),
        *([f"accounting     {s.accounting_problem}"] if s.accounting_problem else []),
        f"results        {s.results or _nothing_new(s)}",
        f"report         nsfw-scan report {s.output}",
    ]
    return "\n".join(lines)
