"""What every loaded scorer shares: the cores it sizes to, and how it reports itself.

Scorers are reached through Beam's cross-process model proxies when a model is shared among
processes (``model_sharing``); only methods pass through those, so what a caller needs to know
of a scorer is asked through methods here.
"""

from __future__ import annotations

import os

import numpy as np

# The model's numeric precisions: float32 is exact (the reference scores); bfloat16 runs the
# convolutions in bfloat16 (TensorFlow engine only). Defined here, apart from the network, so
# that checking a setting does not import TensorFlow.
EXACT_PRECISION = "float32"  # the precision whose scores are the reference
PRECISIONS = (EXACT_PRECISION, "bfloat16")


def cpu_threads() -> int:
    """The cores this process may run on (what the scorers and the decoding pool size to)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Scorer:
    """``score(batch) -> NSFW probabilities``; ``model_id`` names weights and precision."""

    model_id: str
    threads: int  # cores the model uses
    load_seconds: float | None = None  # set by whoever loaded it, measured around the load
    _load_unreported = True

    def get_model_id(self) -> str:
        return self.model_id

    def score_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels``: uint8 BGR views ``[N, 224, 224, 3]`` (``View.pixels``) -> float32 ``[N]``,
        as ``score`` of their network input (``model.preprocess.network_input``)."""
        from .preprocess import network_input

        return self.score(network_input(pixels))

    def take_load_report(self) -> float | None:
        """The seconds this scorer took to load, exactly once (then ``None``), so that a caller
        counts each load where its metrics are live."""
        if not self._load_unreported:
            return None
        self._load_unreported = False
        return self.load_seconds or 0.0
