"""The one place a step applies the job's storage options in its worker process."""

from __future__ import annotations

import apache_beam as beam

from ..storage.options import StorageOptions


class WithStorage(beam.DoFn):
    """A DoFn that sets the launcher's storage options (``storage/options.py`` says why each
    worker process needs them) in its ``setup``, before it touches a file. Subclasses that
    override ``setup`` call this one first."""

    def __init__(self, storage: StorageOptions | None = None):
        super().__init__()
        self._storage = storage

    def setup(self):
        if self._storage is not None:
            self._storage.apply()


class UseStorage(WithStorage):
    """Passes elements through: Beam's own IO steps fused with it (a runner sets up every step
    of a fused stage before the stage runs) then find the storage options set."""

    def process(self, element):
        yield element
