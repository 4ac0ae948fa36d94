"""Scoring engines with one interface, ``score(batch) -> NSFW probabilities``, each described
by a typed spec that loads it (``spec.load()``; specs are small, so they travel to workers).

``tensorflow`` is the product's engine (:class:`model.scorer.Scorer`); ``onnxruntime`` runs the
packaged ONNX file as shipped, the reference the benchmarks compare against.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from .runtime import Engine, cpu_threads
from .weights import WeightsSource, locate, model_id, weights_id


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


@dataclasses.dataclass(frozen=True)
class TensorFlowEngine:
    """This project's Keras network; the arguments of :class:`model.scorer.Scorer`."""

    name: ClassVar[str] = "tensorflow"
    source: WeightsSource = WeightsSource()
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    parallel_batches: int = 0
    precision: str = "float32"

    @property
    def exact(self) -> bool:
        """Whether its scores are the reference's (float32)."""
        return self.precision == "float32"

    def expected_model_id(self) -> str:
        """The ``model_id`` the loaded engine gives its scores, known without loading it."""
        return model_id(weights_id(self.source, locate(self.source)[1]), self.precision)

    def load(self) -> Engine:
        from .scorer import Scorer

        return Scorer(self.source, intra_op_threads=self.intra_op_threads, inter_op_threads=self.inter_op_threads,
                      precision=self.precision, parallel_batches=self.parallel_batches)


@dataclasses.dataclass(frozen=True)
class OnnxRuntimeEngine:
    """The packaged ONNX file run by onnxruntime (ONNX weights only)."""

    name: ClassVar[str] = "onnxruntime"
    source: WeightsSource = WeightsSource()
    threads: int = 0
    exact: ClassVar[bool] = True  # float32, within 1e-4 of the TensorFlow engine's scores

    def expected_model_id(self) -> str:
        """The ``model_id`` the loaded engine gives its scores, known without loading it."""
        return weights_id(self.source, locate(self.source)[1])

    def load(self) -> Engine:
        return OnnxRuntimeScorer(self.source, self.threads)


ENGINES = {spec.name: spec for spec in (TensorFlowEngine, OnnxRuntimeEngine)}


def make_engine(spec: TensorFlowEngine | OnnxRuntimeEngine) -> Engine:
    """The engine a spec describes, loaded (the one place engines are made)."""
    return spec.load()
