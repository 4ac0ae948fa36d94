"""Batched scoring with RunInference: one model per worker process, a compiled call per batch."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from ..model.decision import Thresholds
from ..model import engines
from ..model.preprocess import network_input
from .load import ERRORS, LoadImage
from .manifests import NAMESPACE
from .progress import CountOutcomes
from .results import finish, finish_views

log = logging.getLogger(__name__)

# One entry per model load, in ms, reported by the engine itself at its first batch: the
# summary's model loads (count) and load time (max), and the "loaded" log line, all come from
# it, so a model that never scored (nothing new to score) is in none of them. Beam's own
# load_model_latency metric misses loads made in another process (``model_sharing``).
MODEL_LOAD_MS = "model_load_ms"


class OpenNsfwModelHandler(ModelHandler[np.ndarray, PredictionResult, "Scorer | OnnxRuntimeScorer"]):
    """Loads the open_nsfw scorer (Beam keeps one per worker process) and scores batches.

    Images arrive as uint8 BGR pixels (``model.preprocess.View.pixels``) and become the
    network's float input per batch. ``run_inference`` returns Beam's ``PredictionResult`` per
    image: the NSFW probability and the ``model_id`` of the engine that computed it (weights and
    precision), so each row names the model that actually ran. The 150 KB pixel arrays are not carried past inference
    (``example`` is left empty). ``large_model=True`` or ``model_copies=N`` makes Beam share N copies among
    all the SDK processes of a worker instead of one per process.
    """

    def __init__(self, engine: engines.TensorFlowEngine | engines.OnnxRuntimeEngine, min_batch_size: int, max_batch_size: int,
                 large_model: bool = False, model_copies: int | None = None):
        super().__init__()
        self._engine = engine  # a spec from model.engines
        self._batching = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        self._shared = large_model or model_copies is not None
        self._copies = model_copies or 1

    # Beam's ModelHandler hooks for batching and model sharing (the same on every Beam release)
    def batch_elements_kwargs(self) -> dict:
        return self._batching

    def share_model_across_processes(self) -> bool:
        return self._shared

    def model_copies(self) -> int:
        return self._copies

    def load_model(self):
        started = time.perf_counter()
        engine = engines.make_engine(self._engine)
        engine.load_seconds = time.perf_counter() - started
        return engine

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[PredictionResult]:
        model_id = model.get_model_id()
        seconds = model.take_load_report()  # at the first batch, where metrics are live
        if seconds is not None:  # counted, timed and logged in one place, so the figures agree
            beam.metrics.Metrics.distribution(NAMESPACE, MODEL_LOAD_MS).update(round(seconds * 1000))
            log.info("model %s (%s) loaded in %.1f s (process %d)", model_id, self._engine.name, seconds, os.getpid())
        scores = model.score(network_input(np.stack(batch))).tolist()
        return [PredictionResult(None, score, model_id) for score in scores]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


VIEWS = "views"  # tag of the scored views of files with several (see transforms.load.view_key)


def _route(element):
    """A file's one view straight on; the views of a file with several, keyed by URI, aside."""
    key, result = element  # (row or view_key, PredictionResult) from RunInference
    if isinstance(key, dict):
        yield element
        return
    uri, index, name, count, row = key
    yield beam.pvalue.TaggedOutput(VIEWS, (uri, (index, name, count, row, result.inference, result.model_id)))


def _decide(element, thresholds: Thresholds) -> dict:
    row, result = element  # (row, PredictionResult)
    return finish(row, score=result.inference, model=result.model_id, thresholds=thresholds)


def _decide_views(element, thresholds: Thresholds) -> dict:
    _, views = element  # (uri, every scored view of it)
    views = sorted(views, key=lambda v: v[0])
    row = views[0][3]
    assert len(views) == views[0][2], f"{row['uri']}: {len(views)} of {views[0][2]} views scored"
    return finish_views(row, [(name, score, model) for _, name, _, _, score, model in views], thresholds)


class ScoreImages(beam.PTransform):
    """``Entry`` -> finished, counted rows: read and preprocess (``LoadImage``), score in
    batches (``RunInference`` with ``handler``), decide; every failure is a row among the others.
    Every view is an element of its own in the batches; a file with one view (nearly all) is
    decided as it comes out, the views of a file with several are grouped by URI first and the
    row takes the highest score."""

    def __init__(self, load: LoadImage, handler: OpenNsfwModelHandler, thresholds: Thresholds, count: CountOutcomes):
        super().__init__()
        self._load = load
        self._handler = handler
        self._thresholds = thresholds
        self._count = count

    def expand(self, entries):
        images = entries | "LoadImages" >> beam.ParDo(self._load).with_outputs(ERRORS, main="images")
        inferred = (
            images.images
            | "RunInference" >> RunInference(KeyedModelHandler(self._handler))
            | "Route" >> beam.FlatMap(_route).with_outputs(VIEWS, main="single")
        )
        # each branch counted on its own, before the flatten: counted after it, single-view rows
        # would wait in the local runner for the group of the multi-view ones (the end of the run)
        scored = inferred.single | "Decide" >> beam.Map(_decide, self._thresholds) | "CountScored" >> self._count
        combined = (
            inferred[VIEWS]
            | "GroupViews" >> beam.GroupByKey()
            | "DecideViews" >> beam.Map(_decide_views, self._thresholds)
            | "CountScoredViews" >> self._count
        )
        failed = images[ERRORS] | "CountErrors" >> self._count
        return (scored, combined, failed) | "WithErrors" >> beam.Flatten()
