"""The one way a step gets the job's storage options in its worker process.

The options are the pipeline's own (``storage/options.py`` says why each worker process needs
them set). Every DoFn that touches a file is a :class:`WithStorage`, applied with
:class:`ParDoWithStorage`, which gives it the options of the pipeline it is applied in
(:func:`storage_of`); its ``setup`` sets them before it touches a file, and refuses to run
without them. Beam's own IO steps get them from a :class:`UseStorage` step fused with them
(``read_parquet.py``) or from the sink (``write.py``).
"""

from __future__ import annotations

import copy

import apache_beam as beam

from ..storage.options import StorageOptions


def storage_of(pvalue) -> StorageOptions:
    """The storage options of the pipeline ``pvalue`` (a PCollection or PBegin) belongs to."""
    return StorageOptions.from_pipeline_options(pvalue.pipeline.options)


class WithStorage(beam.DoFn):
    """A DoFn that touches files: its ``setup`` sets ``storage``, the pipeline's storage options
    (given by :class:`ParDoWithStorage`), first. Subclasses that override ``setup`` call this
    one first."""

    storage: StorageOptions | None = None

    def with_storage(self, storage: StorageOptions) -> "WithStorage":
        """A copy of this DoFn that sets ``storage``."""
        fn = copy.copy(self)
        fn.storage = storage
        return fn

    def setup(self):
        if self.storage is None:
            raise RuntimeError(f"{type(self).__name__} touches files but was given no storage options: "
                               "apply it with ParDoWithStorage")
        self.storage.apply()


class ParDoWithStorage(beam.ParDo):
    """``beam.ParDo`` of a :class:`WithStorage`, which it gives the storage options of the
    pipeline it is applied in (its steps' names are a ``beam.ParDo``'s)."""

    def __init__(self, fn: WithStorage, *args, **kwargs):
        if not isinstance(fn, WithStorage):
            raise TypeError(f"ParDoWithStorage takes a WithStorage DoFn, not {type(fn).__name__}")
        super().__init__(fn, *args, **kwargs)

    def default_label(self):
        return f"ParDo({self.fn.default_label()})"

    def expand(self, pcoll):
        self.fn = self.fn.with_storage(storage_of(pcoll))
        return super().expand(pcoll)


class UseStorage(WithStorage):
    """Passes elements through: Beam's own IO steps fused with it (a runner sets up every step
    of a fused stage before the stage runs) then find the storage options set."""

    def process(self, element):
        yield element
