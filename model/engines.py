"""Scoring engines with one interface, ``score(batch) -> NSFW probabilities``.

``tensorflow`` is the product's engine (:class:`model.scorer.Scorer`); ``onnxruntime`` runs the
packaged ONNX file as shipped, the reference the benchmarks compare against.
"""

from __future__ import annotations

import numpy as np

from .runtime import Engine, cpu_threads
from .weights import WeightsSource, locate, weights_id

ENGINES = ("tensorflow", "onnxruntime")


class OnnxRuntimeScorer(Engine):
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
