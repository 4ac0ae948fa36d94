"""Scoring engines with one interface, ``score(batch) -> NSFW probabilities``.

``tensorflow`` is the product's engine (:class:`model.scorer.Scorer`); ``onnxruntime`` runs the
packaged ONNX file as shipped, the reference the benchmarks compare against.
"""

from __future__ import annotations

import os

import numpy as np

from .weights import WeightsSource, locate, weights_id

ENGINES = ("tensorflow", "onnxruntime")


def cpu_threads() -> int:
    """The cores this process may run on (what the engines and the decoding pool size to)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LoadReport:
    """Lets a caller count model loads where its metrics are live: ``take_load_report()`` is
    True exactly once per engine (a method, so it also works through Beam's cross-process
    model proxies)."""

    _load_unreported = True

    def take_load_report(self) -> bool:
        first, self._load_unreported = self._load_unreported, False
        return first


class OnnxRuntimeScorer(LoadReport):
    def __init__(self, source: WeightsSource = WeightsSource(), threads: int = 0):
        import onnxruntime

        if source.kind != "onnx":
            raise ValueError("the onnxruntime engine reads ONNX weights only")
        path, digest = locate(source)
        self.model_id = weights_id(source, digest)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.threads = threads or cpu_threads()  # cores the model uses
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def score(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.asarray(batch, np.float32)})[0][:, 1]


def make_engine(name: str, **scorer_options):
    if name == "tensorflow":
        from .scorer import Scorer

        return Scorer(**scorer_options)
    if name == "onnxruntime":
        return OnnxRuntimeScorer(scorer_options.get("source", WeightsSource()),
                                 scorer_options.get("intra_op_threads", 0))
    raise ValueError(f"unknown engine {name!r}; choose one of {ENGINES}")
