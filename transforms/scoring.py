"""Batched scoring with RunInference: one model per worker process, a compiled call per batch."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from ..model.decision import Thresholds
from .manifests import NAMESPACE
from .results import error_kind, finish

log = logging.getLogger(__name__)


class OpenNsfwModelHandler(ModelHandler[np.ndarray, float, "Scorer | OnnxRuntimeScorer"]):
    """Loads the open_nsfw scorer (Beam keeps one per worker process) and scores batches.

    ``run_inference`` returns plain NSFW probabilities: the 600 KB input arrays are not carried
    past inference. ``large_model=True`` or ``model_copies=N`` makes Beam share N copies among
    all the SDK processes of a worker instead of one per process.
    """

    def __init__(self, engine: str, scorer_options: dict, min_batch_size: int, max_batch_size: int,
                 large_model: bool = False, model_copies: int | None = None):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                         large_model=large_model, model_copies=model_copies)
        self._engine = engine  # model.engines.ENGINES
        self._scorer_options = scorer_options  # model.scorer.Scorer's keyword arguments

    def load_model(self):
        from ..model.engines import make_engine

        started = time.perf_counter()
        engine = make_engine(self._engine, **self._scorer_options)
        log.info("model %s (%s) loaded in %.1f s", engine.model_id, self._engine, time.perf_counter() - started)
        return engine

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[float]:
        if model.take_load_report():  # counted at the first batch, where metrics are live
            beam.metrics.Metrics.counter(NAMESPACE, "model_loads").inc()
        return model.score(np.stack(batch)).tolist()

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


class _Progress:
    """Images finished in this worker process during one run (shared by its DoFn instances)."""

    WINDOW = 10.0  # seconds the current rate is measured over (rows come in batches)

    def __init__(self):
        self.lock = threading.Lock()
        self.done = 0
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
        """(images/s over the last WINDOW seconds, images/s since the first image)."""
        average = self.done / max(now - self.started, 1e-3)
        since, done_then = self.recent[0]
        if now - since < 1.0:  # too short a window to mean anything
            return average, average
        return (self.done - done_then) / (now - since), average


class DecideAndCount(beam.DoFn):
    """Finish scored rows with their decision; count outcomes; log progress per process: a
    line every ``progress_every`` images, and at least every ``progress_seconds`` while images
    come, with the rate since the previous line and since the first image.

    Applied to the scored rows and to the error rows separately, never after a ``Flatten`` of
    the two: Beam's local runner materializes such a Flatten, so the step after it would see
    every row only once all of them are scored (and progress would come at the very end)."""

    _runs: dict[str, _Progress] = {}
    _runs_lock = threading.Lock()

    def __init__(self, thresholds: Thresholds, progress_every: int, run_id: str = "", progress_seconds: float = 10.0):
        self._thresholds = thresholds
        self._every = progress_every
        self._run_id = run_id  # progress is counted per run (a process may run several pipelines)
        self._seconds = progress_seconds

    def setup(self):
        with DecideAndCount._runs_lock:
            self._state = DecideAndCount._runs.setdefault(self._run_id, _Progress())

    def process(self, element):
        if isinstance(element, tuple):  # (row, score) from inference
            row, score = element
            row = finish(row, score=score, decision=self._thresholds.decide(score))
        else:
            row = element
        beam.metrics.Metrics.counter(NAMESPACE, f"decision_{row['decision']}").inc()
        if row["error"]:
            beam.metrics.Metrics.counter(NAMESPACE, "error_" + error_kind(row)).inc()
        self._progress()
        yield row

    def _progress(self):
        state, now = self._state, time.monotonic()
        with state.lock:
            state.add(now)
            if state.done % self._every and now - state.last_time < self._seconds:
                return
            state.last_time = now
            done, (current, average) = state.done, state.rates(now)
        log.info("progress: %d images done in this worker process (%.1f/s over the last %.0f s, %.1f/s since "
                 "its first image)", done, current, min(now - state.recent[0][0], _Progress.WINDOW), average)
