"""One entry per URI: duplicates counted, URIs an earlier run covered dropped, and the stable
split of URIs into the parts of a partitioned run."""

from __future__ import annotations

import dataclasses
import zlib

import apache_beam as beam

from . import metrics


def in_partition(key: str, partition: tuple[int, int]) -> bool:
    """Whether a dedup key belongs to part i of K (a stable hash: the same in every process)."""
    index, count = partition
    return count == 1 or zlib.crc32(key.encode("utf-8", "surrogatepass")) % count == index


@dataclasses.dataclass(frozen=True)
class FirstEntry:
    """Per URI: how many manifest lines name it, the first of them (by manifest, line), and
    whether an earlier run already has its row."""

    count: int = 0
    entry: object = None  # an Entry
    done: bool = False


class _FirstEntry(beam.CombineFn):
    """Combines the entries of one URI, and a ``None`` for an earlier run's row, to a
    :class:`FirstEntry`."""

    def create_accumulator(self):
        return FirstEntry()

    def add_input(self, accumulator, entry):
        if entry is None:
            return dataclasses.replace(accumulator, done=True)
        first = accumulator.entry
        return FirstEntry(accumulator.count + 1, entry if first is None or entry.position < first.position else first,
                          accumulator.done)

    def merge_accumulators(self, accumulators):
        merged = FirstEntry()
        for part in accumulators:
            first = merged.entry
            if part.entry is not None and (first is None or part.entry.position < first.position):
                first = part.entry
            merged = FirstEntry(merged.count + part.count, first, merged.done or part.done)
        return merged

    def extract_output(self, accumulator):
        return accumulator


def _new_entries(keyed):
    """The entry to process, if any; counts duplicates and entries an earlier run covered."""
    _, first = keyed
    if first.count > 1:
        metrics.counter(metrics.DUPLICATES).inc(first.count - 1)
    if first.entry is None:  # a result of an earlier run whose URI is not in these manifests
        return
    if first.done:
        metrics.counter(metrics.ALREADY_DONE).inc()
        return
    yield dataclasses.replace(first.entry, duplicates=first.count - 1) if first.count > 1 else first.entry


class NewEntries(beam.PTransform):
    """``{"entries": Entry, "done": key}`` -> one ``Entry`` per distinct URI (plus one per
    unusable line) whose key is not among ``done`` (the keys earlier runs' rows cover).

    De-duplication and this join are one combine per URI, which Beam shuffles (and distributed
    runners spill to disk): nothing holds the set of URIs in one process."""

    def expand(self, inputs):
        keyed = inputs["entries"] | "KeyByUri" >> beam.Map(lambda entry: (entry.dedup_key, entry))
        marks = inputs["done"] | "MarkDone" >> beam.Map(lambda key: (key, None))
        return (
            (keyed, marks)
            | "WithEarlierRuns" >> beam.Flatten()
            | "FirstPerUri" >> beam.CombinePerKey(_FirstEntry())
            | "DropDuplicatesAndDone" >> beam.FlatMap(_new_entries)
        )
