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
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from ..model import engine_specs
from ..model.decision import Thresholds
from . import metrics
from .elements import Failure, Scored, ScoredView
from .load_steps import FAILED, LoadImage
from .results import FirstPassRule, failed_row, scored_row
from .storage_step import ParDoWithStorage

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

    def score_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self._loaded().score_pixels(pixels)

    def score_views(self, views) -> list:
        return self._loaded().score_views(views)

    def get_model_id(self) -> str:
        return self._loaded().get_model_id()

    def take_load_report(self) -> float | None:
        return self._loaded().take_load_report()


class OpenNsfwModelHandler(ModelHandler[np.ndarray, PredictionResult, "Scorer"]):
    """Loads the open_nsfw scorer (Beam keeps one per worker process) and scores batches.

    Images arrive as uint8 BGR pixels (``model.pictures.yahoo_steps.View.pixels``: views and region maps),
    scored per batch by the scorer's ``score_views``, which makes the network's float input.
    ``run_inference`` returns Beam's ``PredictionResult`` per image: ``(score, window)`` (a region
    map's highest window, else ``None``) and the ``model_id`` of the scorer that computed it
    (weights and precision), so each row names the model that actually ran. The 150 KB pixel arrays are not carried past inference
    (``example`` is left empty). ``large_model=True`` or ``model_copies=N`` makes Beam share N copies among
    all the SDK processes of a worker instead of one per process.
    """

    def __init__(self, spec: engine_specs.EngineSpec, min_batch_size: int, max_batch_size: int,
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
        scores = model.score_views(batch)
        model_id = model.get_model_id()
        seconds = model.take_load_report()  # at the first batch, where metrics are live
        if seconds is not None:  # counted, timed and logged in one place, so the figures agree
            metrics.distribution(metrics.MODEL_LOAD_MS).update(round(seconds * 1000))
            choice = getattr(model, "precision_choice", None)  # a precision chosen by measurement here
            if choice is not None:
                metrics.counter(metrics.precision_counter(choice.precision)).inc()
            log.info("model %s (%s) loaded in %.1f s (process %d)%s", model_id, self._spec.name, seconds, os.getpid(),
                     f"; first pass in {choice.describe()}" if choice is not None else "")
        return [PredictionResult(None, score, model_id) for score in scores]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return metrics.NAMESPACE

    @property
    def exact(self) -> bool:
        """Whether the scorer it loads gives the reference's scores."""
        return self._spec.exact


SEVERAL = "several"  # tag of the scored views of files with several, to be grouped by URI
SCORED_BRANCHES = ("OneView", "SeveralViews")  # ScoreFiles' branches of scored files


class CollectViews(beam.DoFn):
    """Scored views -> files, as their last view comes: a file of one view at once; the views of
    a file with several are held until all have come, then the file. They come in the bundle that loaded the file (loading, inference and this step
    run fused, in one bundle), so the rows of files with regions or frames finish as they are
    scored, not when every file is: progress and checkpoints keep up. Views whose file's others
    have not come by the bundle's end go to a grouping by URI instead (tagged ``SEVERAL``)."""

    def start_bundle(self):
        self._views: dict[str, list[ScoredView]] = {}

    def process(self, element):
        view, result = element  # RunInference's (key, PredictionResult)
        score, window = result.inference
        scored = ScoredView(view, score, result.model_id, window)
        if view.count == 1:
            yield Scored(view.image, (scored,))
            return
        views = self._views.setdefault(view.uri, [])
        views.append(scored)
        if len(views) == view.count:
            del self._views[view.uri]
            yield Scored.of_views(views)

    def finish_bundle(self):
        for uri, views in self._views.items():
            for scored in views:
                yield beam.pvalue.TaggedOutput(
                    SEVERAL, WindowedValue((uri, scored), MIN_TIMESTAMP, (GlobalWindow(),)))
        self._views = {}


def _grouped_file(element) -> Scored:
    _, views = element  # (uri, every scored view of its file)
    return Scored.of_views(views)


class ScoreFiles(beam.PTransform):
    """``Entry`` -> ``Scored`` files: ``load`` (one ``(ViewOf, pixels)`` per view) ->
    ``RunInference`` with ``handler`` -> a ``ScoredView`` per view -> the file, once all its views
    are scored (``CollectViews``).

    Returns three branches, kept apart until they are counted (see ``FinishRows``):
    ``SCORED_BRANCHES`` (``Scored``) and ``Failed`` (``Failure``)."""

    def __init__(self, load: LoadImage, handler: OpenNsfwModelHandler):
        super().__init__()
        self._load = load
        self._handler = handler

    def expand(self, entries):
        loaded = entries | "LoadImages" >> ParDoWithStorage(self._load).with_outputs(FAILED, main="views")
        scored = (
            loaded.views
            | "RunInference" >> RunInference(KeyedModelHandler(self._handler))
            | "OneView" >> beam.ParDo(CollectViews()).with_outputs(SEVERAL, main="files")
        )
        # kept apart from the collected ones: a Flatten with a grouping's output would hold them
        # back until every file is grouped on runners that materialize it (the local runner does)
        grouped = scored[SEVERAL] | "GroupViews" >> beam.GroupByKey() | "SeveralViews" >> beam.Map(_grouped_file)
        return {"OneView": scored.files, "SeveralViews": grouped, "Failed": loaded[FAILED]}


@dataclasses.dataclass(frozen=True)
class FirstPass:
    """The cascade's cheap first pass: every file is loaded by ``load`` and scored by
    ``handler``; a row that ``rule`` does not keep (near a threshold), or whose file ``load``
    read but could not decode, is made again by the exact steps. The others keep the first
    pass's score (their ``exact`` column is false)."""

    load: LoadImage
    handler: OpenNsfwModelHandler
    rule: FirstPassRule


AGAIN = "again"  # tag of the first pass's entries that the exact steps score again


def _kept_or_again(scored: Scored, rule: FirstPassRule):
    """A first-pass row, or (tagged ``again``) its file's entry when ``rule`` does not keep it."""
    if not rule.keeps(scored):
        metrics.counter(metrics.RESCORED).inc()
        yield beam.pvalue.TaggedOutput(AGAIN, scored.image.read.entry)
    else:
        yield scored_row(scored, rule.thresholds, exact=False)


def _failed_or_again(failure: Failure):
    """A first-pass failure's row, or (tagged ``again``) its entry when the file was read but not
    decoded: the exact loader gets its own try."""
    if failure.undecoded:
        metrics.counter(metrics.RESCORED).inc()
        yield beam.pvalue.TaggedOutput(AGAIN, failure.entry)
    else:
        yield failed_row(failure)


class ScoreImages(beam.PTransform):
    """``Entry`` -> finished, counted rows (:class:`ScoreFiles`, then a row per file; every
    failure is a row among the others).

    With ``first_pass`` (a :class:`FirstPass`), every file goes through its cheaper steps first
    and only the entries of rows near a threshold (or not decoded) through ``load`` and
    ``handler``. The decisions are the exact steps' own: a row's first-pass score is kept only
    where it lies farther from every threshold than the first pass ever moved a score (the
    margin), so its exact score falls on the same side of each threshold."""

    def __init__(self, load: LoadImage, handler: OpenNsfwModelHandler, thresholds: Thresholds,
                 finish: beam.PTransform, first_pass: FirstPass | None = None):
        super().__init__()
        self._load = load
        self._handler = handler
        self._thresholds = thresholds
        self._finish = finish  # a FinishRows
        self._first = first_pass

    def _rows(self, entries, load: LoadImage, handler: OpenNsfwModelHandler, step: str) -> dict:
        """The rows of ``entries``, by branch, not yet finished."""
        exact = load.exact and handler.exact
        files = entries | f"{step}ScoreFiles" >> ScoreFiles(load, handler)
        rows = {f"{step}{name}": files[name] | f"{step}{name}Rows" >> beam.Map(
            scored_row, self._thresholds, exact) for name in SCORED_BRANCHES}
        rows[f"{step}Failed"] = files["Failed"] | f"{step}FailedRows" >> beam.Map(failed_row)
        return rows

    def expand(self, entries):
        if self._first is None:
            branches = self._rows(entries, self._load, self._handler, "")
        else:
            first = self._first
            files = entries | "FirstPassScoreFiles" >> ScoreFiles(first.load, first.handler)
            branches, again = {}, []
            for name, keep in (*((name, _kept_or_again) for name in SCORED_BRANCHES), ("Failed", _failed_or_again)):
                args = (first.rule,) if keep is _kept_or_again else ()
                split = files[name] | f"FirstPass{name}Near" >> beam.FlatMap(keep, *args).with_outputs(
                    AGAIN, main="kept")
                branches[f"FirstPass{name}"] = split.kept
                again.append(split[AGAIN])
            near = tuple(again) | "NearThreshold" >> beam.Flatten()
            branches.update(self._rows(near, self._load, self._handler, "Exact"))
        finished = [rows | f"Finish{name}" >> self._finish for name, rows in branches.items()]
        return tuple(finished) | "WithFailures" >> beam.Flatten()
