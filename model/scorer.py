"""Scoring: the network with its weights, built once, called as one compiled graph per batch."""

from __future__ import annotations

import logging
import time

import numpy as np

from .engines import LoadReport
from .network import INPUT_SHAPE, build_resnet50_thin
from .weights import WeightsSource, load_into, load_weights

log = logging.getLogger(__name__)


def set_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's thread pools (0 = TensorFlow's default). Only possible before the
    TensorFlow runtime starts in this process; later requests are logged and ignored."""
    import tensorflow as tf

    for setter, getter, wanted in (
        (tf.config.threading.set_intra_op_parallelism_threads, tf.config.threading.get_intra_op_parallelism_threads, intra_op),
        (tf.config.threading.set_inter_op_parallelism_threads, tf.config.threading.get_inter_op_parallelism_threads, inter_op),
    ):
        if wanted and getter() != wanted:
            try:
                setter(wanted)
            except RuntimeError:
                log.warning("TensorFlow already started in this process; thread setting %d ignored", wanted)


class Scorer(LoadReport):
    """open_nsfw on TensorFlow. ``score(batch)`` returns the NSFW probability per image."""

    def __init__(self, source: WeightsSource = WeightsSource(), use_cache: bool = True,
                 intra_op_threads: int = 0, inter_op_threads: int = 0, precision: str = "float32"):
        import tensorflow as tf

        started = time.perf_counter()
        set_threads(intra_op_threads, inter_op_threads)
        loaded = load_weights(source, use_cache=use_cache)
        self.model = build_resnet50_thin(precision)
        load_into(self.model, loaded.weights)
        self.model_id = loaded.model_id if precision == "float32" else f"{loaded.model_id}:{precision}"
        self.weights_from_cache = loaded.from_cache
        model = self.model

        @tf.function(input_signature=[tf.TensorSpec((None, *INPUT_SHAPE), tf.float32)])
        def nsfw_probability(batch):
            return model(batch, training=False)[:, 1]

        self._predict = nsfw_probability
        self.load_seconds = time.perf_counter() - started

    def score(self, batch: np.ndarray) -> np.ndarray:
        """``batch``: float32 ``[N, 224, 224, 3]`` from a loader -> float32 ``[N]``."""
        if len(batch) == 0:
            return np.zeros((0,), np.float32)
        return self._predict(np.asarray(batch, dtype=np.float32)).numpy()
