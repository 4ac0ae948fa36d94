"""The typed specs of the scoring engines: each describes one and loads it (``spec.load()``;
specs are small, so they travel to workers). The loaded scorers are in ``model/engines.py``.

``tensorflow`` is the product's engine (:class:`model.engines.TensorFlowScorer`); ``onnxruntime``
runs the packaged ONNX file as shipped (:class:`model.engines.OnnxRuntimeScorer`), the reference
the benchmarks compare against.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .precision import AUTO, CANDIDATES
from .scorer import EXACT_PRECISION, Scorer
from .weights import WeightsSource, locate, model_id, weights_id


@dataclasses.dataclass(frozen=True)
class TensorFlowSpec:
    """This project's Keras network; the arguments of :class:`model.engines.TensorFlowScorer`."""

    name: ClassVar[str] = "tensorflow"
    source: WeightsSource = WeightsSource()
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    parallel_batches: int = 0
    precision: str = EXACT_PRECISION

    @property
    def exact(self) -> bool:
        """Whether its scores are the reference's (float32)."""
        return self.precision == EXACT_PRECISION

    def expected_model_id(self) -> str:
        """The ``model_id`` the loaded scorer gives its scores, known without loading it (with
        precision ``auto``: float32's, the first of :meth:`model_ids`)."""
        return self.model_ids()[0]

    def model_ids(self) -> tuple[str, ...]:
        """Every ``model_id`` its scores may carry: one, or with precision ``auto`` (chosen by
        measurement where it loads, ``model.precision``) each candidate's."""
        weights = weights_id(self.source, locate(self.source)[1])
        return tuple(model_id(weights, p) for p in (CANDIDATES if self.precision == AUTO else (self.precision,)))

    def load(self, warm_up: bool = True) -> Scorer:
        """The loaded scorer; ``warm_up``: its graphs traced now rather than at first use."""
        from .engines import TensorFlowScorer

        return TensorFlowScorer(self.source, intra_op_threads=self.intra_op_threads,
                                inter_op_threads=self.inter_op_threads, precision=self.precision,
                                parallel_batches=self.parallel_batches, warm_up=warm_up)


@dataclasses.dataclass(frozen=True)
class OnnxRuntimeSpec:
    """The packaged ONNX file run by onnxruntime (ONNX weights only)."""

    name: ClassVar[str] = "onnxruntime"
    source: WeightsSource = WeightsSource()
    threads: int = 0
    exact: ClassVar[bool] = True  # float32, within 1e-4 of the TensorFlow engine's scores

    def expected_model_id(self) -> str:
        """The ``model_id`` the loaded scorer gives its scores, known without loading it."""
        return weights_id(self.source, locate(self.source)[1])

    def load(self, warm_up: bool = True) -> Scorer:
        """The loaded scorer (an onnxruntime session has nothing to warm up)."""
        from .engines import OnnxRuntimeScorer

        return OnnxRuntimeScorer(self.source, self.threads)


EngineSpec = TensorFlowSpec | OnnxRuntimeSpec

ENGINES = {spec.name: spec for spec in (TensorFlowSpec, OnnxRuntimeSpec)}
