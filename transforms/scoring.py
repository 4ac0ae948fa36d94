"""Batched scoring with RunInference: one model per worker process, a compiled call per batch."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from ..model.decision import Thresholds
from .load import ERRORS, LoadImage
from .manifests import NAMESPACE
from .results import finish

log = logging.getLogger(__name__)

# One entry per model load, in ms, reported by the engine itself: the summary's model loads
# (count) and load time (max) both come from it. Beam's own load_model_latency metric misses
# loads made in another process (a model shared through ``model_sharing``).
MODEL_LOAD_MS = "model_load_ms"


class OpenNsfwModelHandler(ModelHandler[np.ndarray, PredictionResult, "Scorer | OnnxRuntimeScorer"]):
    """Loads the open_nsfw scorer (Beam keeps one per worker process) and scores batches.

    ``run_inference`` returns Beam's ``PredictionResult`` per image: the NSFW probability and
    the ``model_id`` of the engine that computed it (weights and precision), so each row names
    the model that actually ran. The 600 KB input arrays are not carried past inference
    (``example`` is left empty). ``large_model=True`` or ``model_copies=N`` makes Beam share N copies among
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
        engine.load_seconds = time.perf_counter() - started
        log.info("model %s (%s) loaded in %.1f s", engine.model_id, self._engine, engine.load_seconds)
        return engine

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[PredictionResult]:
        seconds = model.take_load_report()  # at the first batch, where metrics are live
        if seconds is not None:
            beam.metrics.Metrics.distribution(NAMESPACE, MODEL_LOAD_MS).update(round(seconds * 1000))
        model_id = model.get_model_id()
        return [PredictionResult(None, score, model_id) for score in model.score(np.stack(batch)).tolist()]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


def _decide(element, thresholds: Thresholds) -> dict:
    row, result = element  # (row, PredictionResult) from RunInference
    return finish(row, score=result.inference, model=result.model_id, thresholds=thresholds)


class ScoreImages(beam.PTransform):
    """``Entry`` -> finished rows: read and preprocess (``LoadImage``), score in batches
    (``RunInference`` with ``handler``), decide; every failure is a row among the others."""

    def __init__(self, load: LoadImage, handler: OpenNsfwModelHandler, thresholds: Thresholds):
        super().__init__()
        self._load = load
        self._handler = handler
        self._thresholds = thresholds

    def expand(self, entries):
        images = entries | "LoadImages" >> beam.ParDo(self._load).with_outputs(ERRORS, main="images")
        scored = (
            images.images
            | "RunInference" >> RunInference(KeyedModelHandler(self._handler))
            | "Decide" >> beam.Map(_decide, self._thresholds)
        )
        return (scored, images[ERRORS]) | "WithErrors" >> beam.Flatten()


class CountOutcomes(beam.DoFn):
    """Finished rows pass through; decisions and errors by kind are counted, and progress is
    logged per process."""

    _lock = threading.Lock()
    _done = 0
    _started = None

    def __init__(self, progress_every: int):
        self._every = progress_every

    def process(self, row):
        beam.metrics.Metrics.counter(NAMESPACE, f"decision_{row['decision']}").inc()
        if row["error_kind"]:
            beam.metrics.Metrics.counter(NAMESPACE, "error_" + row["error_kind"]).inc()
        self._progress()
        yield row

    def _progress(self):
        cls = CountOutcomes
        with cls._lock:
            cls._started = cls._started or time.monotonic()
            cls._done += 1
            done = cls._done
        if done % self._every == 0:
            rate = done / max(time.monotonic() - cls._started, 1e-9)
            log.info("progress: %d images done in this worker process (%.1f/s)", done, rate)
