"""Batched scoring with RunInference: one model per worker process, a compiled call per batch."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from ..model import engines
from ..model.decision import Thresholds
from ..model.preprocess import network_input
from ..storage.schema import Column
from . import metrics
from .load import ERRORS, LoadImage
from .manifests import entry_of
from .progress import CountOutcomes
from .results import finish, finish_views

log = logging.getLogger(__name__)



def load_timed(spec):
    """The scorer ``spec`` describes, loaded, with the seconds it took."""
    started = time.perf_counter()
    scorer = spec.load()
    scorer.load_seconds = time.perf_counter() - started
    return scorer


class LoadedOnFirstBatch:
    """A scorer loaded when it is first asked to score, not when its step starts: the
    cascade's exact model, which a worker whose rows all keep their first-pass scores never
    needs (its load would cost start-up time and memory for nothing)."""

    def __init__(self, spec):
        self._spec = spec
        self._scorer = None
        self._lock = threading.Lock()

    def _loaded(self):
        with self._lock:
            if self._scorer is None:
                self._scorer = load_timed(self._spec)
            return self._scorer

    def score(self, batch: np.ndarray) -> np.ndarray:
        return self._loaded().score(batch)

    def get_model_id(self) -> str:
        return self._loaded().get_model_id()

    def take_load_report(self) -> float | None:
        return self._loaded().take_load_report()


class OpenNsfwModelHandler(ModelHandler[np.ndarray, PredictionResult, "Scorer"]):
    """Loads the open_nsfw scorer (Beam keeps one per worker process) and scores batches.

    Images arrive as uint8 BGR pixels (``model.preprocess.View.pixels``) and become the
    network's float input per batch. ``run_inference`` returns Beam's ``PredictionResult`` per
    image: the NSFW probability and the ``model_id`` of the scorer that computed it (weights and
    precision), so each row names the model that actually ran. The 150 KB pixel arrays are not carried past inference
    (``example`` is left empty). ``large_model=True`` or ``model_copies=N`` makes Beam share N copies among
    all the SDK processes of a worker instead of one per process.
    """

    def __init__(self, spec: engines.EngineSpec, min_batch_size: int, max_batch_size: int,
                 large_model: bool = False, model_copies: int | None = None, load_on_first_batch: bool = False):
        super().__init__()
        self._spec = spec
        self._on_first_batch = load_on_first_batch
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
        if self._on_first_batch:
            return LoadedOnFirstBatch(self._spec)
        return load_timed(self._spec)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[PredictionResult]:
        scores = model.score(network_input(np.stack(batch))).tolist()
        model_id = model.get_model_id()
        seconds = model.take_load_report()  # at the first batch, where metrics are live
        if seconds is not None:  # counted, timed and logged in one place, so the figures agree
            metrics.distribution(metrics.MODEL_LOAD_MS).update(round(seconds * 1000))
            log.info("model %s (%s) loaded in %.1f s (process %d)", model_id, self._spec.name, seconds, os.getpid())
        return [PredictionResult(None, score, model_id) for score in scores]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return metrics.NAMESPACE

    @property
    def exact(self) -> bool:
        """Whether the scorer it loads gives the reference's scores."""
        return self._spec.exact


VIEWS = "views"  # tag of the scored views of files with several (see transforms.load.view_key)


def _route(element):
    """A file's one view straight on; the views of a file with several, keyed by URI, aside."""
    key, result = element  # (row or view_key, PredictionResult) from RunInference
    if isinstance(key, dict):
        yield element
        return
    uri, index, name, count, row = key
    yield beam.pvalue.TaggedOutput(VIEWS, (uri, (index, name, count, row, result.inference, result.model_id)))


def _decide(element, thresholds: Thresholds, exact: bool) -> dict:
    row, result = element  # (row, PredictionResult)
    return finish(row, score=result.inference, model=result.model_id, thresholds=thresholds, exact=exact)


def _decide_views(element, thresholds: Thresholds, exact: bool) -> dict:
    _, views = element  # (uri, every scored view of it)
    views = sorted(views, key=lambda v: v[0])
    row = views[0][3]
    assert len(views) == views[0][2], f"{row[Column.URI]}: {len(views)} of {views[0][2]} views scored"
    return finish_views(row, [(name, score, model) for _, name, _, _, score, model in views], thresholds, exact)


@dataclasses.dataclass(frozen=True)
class FirstPass:
    """The cascade's cheap first pass: every file is loaded by ``load`` and scored by
    ``handler``; a row whose score lies within ``margin`` of a threshold, or whose file ``load``
    read but could not decode, is made again by the exact steps. The others keep the first
    pass's score (their ``exact`` column is false)."""

    load: LoadImage
    handler: OpenNsfwModelHandler
    margin: float


AGAIN = "again"  # tag of the first pass's rows that the exact steps make again


def _keep_or_again(row: dict, thresholds: Thresholds, margin: float):
    """A first-pass row on, or (tagged ``again``) its entry, for the exact steps."""
    if row[Column.SCORE] is not None:
        again = thresholds.near(row[Column.SCORE], margin)
    else:  # bytes read but not decoded: the exact loader gets its own try
        again = bool(row[Column.BYTES])
    if again:
        metrics.counter(metrics.RESCORED).inc()
        yield beam.pvalue.TaggedOutput(AGAIN, entry_of(row))
    else:
        yield row


class ScoreImages(beam.PTransform):
    """``Entry`` -> finished, counted rows: read and preprocess (``LoadImage``), score in
    batches (``RunInference`` with ``handler``), decide; every failure is a row among the others.
    Every view is an element of its own in the batches; a file with one view (nearly all) is
    decided as it comes out, the views of a file with several are grouped by URI first and the
    row takes the highest score.

    With ``first_pass`` (a :class:`FirstPass`), every file goes through its cheaper steps first
    and only the rows near a threshold (or not decoded) through ``load`` and ``handler``. The
    decisions are the exact steps' own: a row's first-pass score is kept only where it lies
    farther from every threshold than the first pass ever moved a score (the margin), so its
    exact score falls on the same side of each threshold."""

    def __init__(self, load: LoadImage, handler: OpenNsfwModelHandler, thresholds: Thresholds, count: CountOutcomes,
                 first_pass: FirstPass | None = None):
        super().__init__()
        self._load = load
        self._handler = handler
        self._thresholds = thresholds
        self._count = count
        self._first = first_pass

    def _scored(self, entries, load: LoadImage, handler: OpenNsfwModelHandler, step: str) -> dict:
        """The finished rows of ``entries``, not yet counted: one PCollection per branch."""
        exact = load.exact and handler.exact
        images = entries | f"{step}LoadImages" >> beam.ParDo(load).with_outputs(ERRORS, main="images")
        inferred = (
            images.images
            | f"{step}RunInference" >> RunInference(KeyedModelHandler(handler))
            | f"{step}Route" >> beam.FlatMap(_route).with_outputs(VIEWS, main="single")
        )
        return {
            "Scored": inferred.single | f"{step}Decide" >> beam.Map(_decide, self._thresholds, exact),
            "ScoredViews": (
                inferred[VIEWS]
                | f"{step}GroupViews" >> beam.GroupByKey()
                | f"{step}DecideViews" >> beam.Map(_decide_views, self._thresholds, exact)
            ),
            "Errors": images[ERRORS],
        }

    def expand(self, entries):
        if self._first is None:
            branches = self._scored(entries, self._load, self._handler, "")
        else:
            first = self._first
            branches, again = {}, []
            for name, rows in self._scored(entries, first.load, first.handler, "FirstPass").items():
                split = rows | f"Near{name}" >> beam.FlatMap(
                    _keep_or_again, self._thresholds, first.margin).with_outputs(AGAIN, main="kept")
                branches[f"FirstPass{name}"] = split.kept
                again.append(split[AGAIN])
            exact = tuple(again) | "NearThreshold" >> beam.Flatten()
            branches.update(self._scored(exact, self._load, self._handler, "Exact"))
        # each branch counted on its own, before the flatten: counted after it, single-view rows
        # would wait in the local runner for the group of the multi-view ones (the end of the run)
        counted = [rows | f"Count{name}" >> self._count for name, rows in branches.items()]
        return tuple(counted) | "WithErrors" >> beam.Flatten()
