"""The job's manifest step: manifest paths -> one ``Entry`` per line, streamed (a manifest is
never held in memory), every physical line counted (``metrics.LINE_COUNTERS``). Formats and
their readers are in ``manifest_formats.py``, the launcher's checks in ``manifest_plan.py``."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from . import metrics
from .dedup import in_partition
from .elements import Entry
from .manifest_formats import entry_of_record, records
from .manifest_plan import ManifestPlan
from .metrics import CONTINUED, ENTRIES, LINE_COUNTERS, LINES
from .storage_step import ParDoWithStorage, WithStorage


class ReadManifest(WithStorage):
    """A manifest path -> its entries; ``count_rows``: whether its lines are counted (a
    partitioned run reads the manifests once per part, and counts them once)."""

    def __init__(self, plan: ManifestPlan, count_rows: bool = True):
        super().__init__()
        self._plan = plan
        self._count_rows = count_rows

    def setup(self):
        super().setup()
        self._counters = {name: metrics.counter(name) for name in LINE_COUNTERS}

    def _count(self, name: str, n: int = 1) -> None:
        if self._count_rows and n:
            self._counters[name].inc(n)

    def process(self, path: str) -> Iterator[Entry]:
        plan = self._plan
        for record in records(path, plan.uri_column):
            self._count(LINES, record.span)
            if record.skipped is not None:
                self._count(record.skipped, record.span)
                continue
            self._count(ENTRIES)
            self._count(CONTINUED, record.span - 1)
            yield entry_of_record(record, path, plan.columns, plan.uri_column)


class ReadManifests(beam.PTransform):
    """Manifest files -> an ``Entry`` per line (those of part i of K where ``partition`` = (i, K))."""

    def __init__(self, plan: ManifestPlan, partition: tuple[int, int] = (0, 1)):
        super().__init__()
        self._plan = plan
        self._partition = partition

    def expand(self, pbegin):
        entries = (
            pbegin
            | "ListManifests" >> beam.Create(self._plan.files)
            | "ReadLines" >> ParDoWithStorage(ReadManifest(self._plan, self._partition[0] == 0))
        )
        if self._partition[1] > 1:
            partition = self._partition
            entries = entries | "ThisPart" >> beam.Filter(lambda entry: in_partition(entry.dedup_key, partition))
        return entries
