"""The one place a step applies the job's storage options in its worker process.

The options are the pipeline's own (``storage/options.py`` says why each worker process needs
them set): a composite takes them from the PCollection it expands (:func:`storage_of`) and
hands them to the DoFns that touch files (:class:`WithStorage`); nothing else carries them.
"""

from __future__ import annotations

import copy

import apache_beam as beam

from ..storage.options import StorageOptions


def storage_of(pvalue) -> StorageOptions:
    """The storage options of the pipeline ``pvalue`` (a PCollection or PBegin) belongs to."""
    return StorageOptions.from_pipeline_options(pvalue.pipeline.options)


class WithStorage(beam.DoFn):
    """A DoFn that sets the pipeline's storage options in its ``setup``, before it touches a
    file. Subclasses that override ``setup`` call this one first."""

    _storage: StorageOptions | None = None

    def using(self, storage: StorageOptions) -> "WithStorage":
        """A copy of this DoFn that applies ``storage``."""
        fn = copy.copy(self)
        fn._storage = storage
        return fn

    def setup(self):
        if self._storage is not None:
            self._storage.apply()


class UseStorage(WithStorage):
    """Passes elements through: Beam's own IO steps fused with it (a runner sets up every step
    of a fused stage before the stage runs) then find the storage options set."""

    def process(self, element):
        yield element
