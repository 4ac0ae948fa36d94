"""The DoFns that read and preprocess in the worker's pools (``transforms/read_and_decode.py``):
``LoadImage`` (``Entry`` -> one ``(ViewOf, pixels)`` per view) and ``HashFile`` (``Entry`` ->
``(sha256, Read)``); every failure goes out on the ``failed`` output as a ``Failure``."""

from __future__ import annotations

from concurrent.futures import Future

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from . import metrics
from .elements import Entry, Failure, Loaded, Read
from .read_and_decode import Ahead, Loading
from .storage_step import WithStorage

FAILED = "failed"  # tag of the output that carries failures


class _LoadsAhead(WithStorage):
    """Hands each entry to ``Loading`` in this process's pools and emits the results in order,
    once ``ahead`` newer entries have been handed over (the rest at the end of the bundle);
    a :class:`Failure` goes out on the ``failed`` output."""

    def __init__(self, loading: Loading, ahead: int):
        super().__init__()
        self._loading = loading
        self._limit = ahead

    @property
    def exact(self) -> bool:
        """Whether it loads with Yahoo's exact preprocessing."""
        return self._loading.exact

    def setup(self):
        super().setup()
        self._loading.start()
        self._bytes_read = metrics.counter(metrics.BYTES_READ)

    def start_bundle(self):
        self._ahead = Ahead(self._limit)

    def process(self, entry: Entry, window=beam.DoFn.WindowParam, timestamp=beam.DoFn.TimestampParam):
        future = self._submit(entry)
        if future is None:
            yield from self._outputs(self._now(entry))
            return
        for result, (timestamp, window) in self._ahead.add(future, (timestamp, window)):
            yield from self._windowed(result, timestamp, window)

    def finish_bundle(self):
        for result, (timestamp, window) in self._ahead.drain():
            yield from self._windowed(result, timestamp, window)

    def _windowed(self, result, timestamp, window):
        """Outputs of a result taken back outside ``process`` (which must carry their window)."""
        return self._outputs(result, lambda value: WindowedValue(value, timestamp, (window,)))

    def _outputs(self, result, wrap=lambda value: value):
        # Beam's metrics live in the worker thread: counted here, never in a pool's thread.
        if result.failed:
            if result.size:
                self._bytes_read.inc(result.size)
            yield beam.pvalue.TaggedOutput(FAILED, wrap(result))
        else:
            yield from map(wrap, self._emit(result))


class LoadImage(_LoadsAhead):
    """``Entry`` -> ``(ViewOf, pixels)``, one per view of the file (``pixels``: ``View.pixels``,
    uint8), or a :class:`Failure` on ``failed``. ``ahead``: how many entries may be in the pools
    per DoFn instance (at least a batch, so that the next batch decodes while this one is
    scored)."""

    def _submit(self, entry: Entry) -> Future | None:
        return self._loading.submit(entry)

    def _now(self, entry: Entry) -> Loaded | Failure:
        return self._loading.load(entry)

    def _emit(self, loaded: Loaded):
        image = loaded.image
        self._bytes_read.inc(image.read.size)
        # uint8 pixels travel to the model, a quarter of the float input's size
        for key, view in zip(loaded.keys(), loaded.views):
            yield key, view.pixels


class HashFile(_LoadsAhead):
    """``Entry`` -> ``(sha256, Read)`` without decoding (for content de-duplication), or a
    :class:`Failure` on ``failed``; reads overlap in the process's reading pool, ``ahead`` of
    them per DoFn instance (no reading pool: in the worker thread)."""

    def _submit(self, entry: Entry) -> Future | None:
        return self._loading.submit_hash(entry)

    def _now(self, entry: Entry) -> Read | Failure:
        return self._loading.hash(entry)

    def _emit(self, read: Read):
        self._bytes_read.inc(read.size)
        yield read.sha256, read
