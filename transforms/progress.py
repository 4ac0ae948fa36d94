"""Counting finished rows: Beam counters per decision and error kind, and progress lines while
the job runs (with the share done and the time left where one process sees the whole job)."""

from __future__ import annotations

import collections
import logging
import os
import threading
import time

import apache_beam as beam

from ..storage.schema import Column
from . import metrics

log = logging.getLogger(__name__)

# Runs whose graph this process built. Beam's local runner runs its workers in the launching
# process, so a counting step that finds its run here sees every row of the job and can give a
# percentage and the time left; in any other process (a worker pool, Dataflow, Flink, Spark)
# it sees only its own share of the rows.
_LAUNCHED: set[str] = set()


class _Progress:
    """Rows finished in this process during one run (shared by its DoFn instances and threads)."""

    WINDOW = 10.0  # seconds the current rate is measured over (rows come in batches)

    def __init__(self):
        self.lock = threading.Lock()
        self.done = 0
        self.total = None  # rows the run writes, once announced
        self.started = self.last_time = None
        self.recent = collections.deque()  # (time, done), the last WINDOW seconds

    def add(self, now: float) -> None:
        if self.started is None:
            self.started = self.last_time = now
        self.done += 1
        self.recent.append((now, self.done))
        while now - self.recent[0][0] > self.WINDOW:
            self.recent.popleft()

    def rates(self, now: float) -> tuple[float, float]:
        """(rows/s over the last WINDOW seconds, rows/s since the first row)."""
        average = self.done / max(now - self.started, 1e-3)
        since, done_then = self.recent[0]
        if now - since < 1.0:  # too short a window to mean anything
            return average, average
        return (self.done - done_then) / (now - since), average


def time_left(seconds: float) -> str:
    """A time left as a person reads it: ``under 1 s``, ``about 40 s``, ``about 12 min``,
    ``about 3 h 05 min``."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes:02d} min"


class _CountRows(beam.DoFn):
    def __init__(self, run_id: str, every: int, seconds: float, part: str):
        self._run_id, self._every, self._seconds, self._part = run_id, every, seconds, part

    def setup(self):
        with CountOutcomes.runs_lock:
            self._state = CountOutcomes.runs.setdefault(self._run_id, _Progress())
        self._whole_job = self._run_id in _LAUNCHED

    def process(self, row, total):
        metrics.counter(metrics.decision_counter(row[Column.DECISION])).inc()
        if row[Column.ERROR_KIND]:
            metrics.counter(metrics.error_counter(row[Column.ERROR_KIND])).inc()
        if row[Column.MATCH] is not None:
            metrics.counter(metrics.MATCHED).inc()
        elif row[Column.MATCH_CHECKED] is False:
            metrics.counter(metrics.NOT_MATCHABLE).inc()
        self._progress(total)
        yield row

    def _progress(self, total):
        state, now = self._state, time.monotonic()
        with state.lock:
            announce = state.total is None
            state.total = total
            state.add(now)
            due = not state.done % self._every or now - state.last_time >= self._seconds or state.done == total
            if due:
                state.last_time = now
                done, (current, average) = state.done, state.rates(now)
                window = min(now - state.recent[0][0], _Progress.WINDOW)
        if announce:
            log.info("%s%d rows to write (URIs without a row in the output folder, and unusable manifest lines)",
                     self._part, total)
        if not due:
            return
        since = "since the first" if self._whole_job else "since its first image"
        rates = (f"{current:.1f}/s over the last {window:.0f} s, {average:.1f}/s {since}" if window >= 1
                 else f"{average:.1f}/s {since}")
        if self._whole_job and total:
            left = f"; {time_left((total - done) / current)} left" if current > 0 and done < total else ""
            log.info("%sprogress: %d of %d images (%.0f%%), %s%s", self._part, done, total, 100.0 * done / total,
                     rates, left)
        else:
            log.info("%sprogress: %d images done in worker process %d (%s)", self._part, done, os.getpid(), rates)


class CountOutcomes(beam.PTransform):
    """Finished rows -> the same rows, counted: decisions and errors by kind (Beam counters), and
    a progress line every ``progress_every`` rows and at least every ``progress_seconds`` while
    rows come, with the rate over the last seconds and since the first row. ``total`` (a
    singleton side input: the rows this run writes) is announced once, and adds the percentage
    and the time left where this process sees the whole job.

    Applied to each branch of finished rows before they are flattened together, never after:
    Beam's local runner materializes such a Flatten, so the step after it would see every row
    only once all of them are scored (and progress would come at the very end). The same
    holds if ``total`` is computed in the stage that feeds the rows: ``total`` must come from a
    PCollection that is reshuffled before its rows are scored (see ``pipeline/run.py``)."""

    runs: dict[str, _Progress] = {}  # per run: a process may run several pipelines
    runs_lock = threading.Lock()

    def __init__(self, progress_every: int, run_id: str, total: beam.pvalue.AsSingleton, part: str = "",
                 progress_seconds: float = 10.0):
        super().__init__()
        _LAUNCHED.add(run_id)
        self._fn = _CountRows(run_id, progress_every, progress_seconds, f"{part}: " if part else "")
        self._total = total

    def expand(self, rows):
        return rows | beam.ParDo(self._fn, total=self._total)
