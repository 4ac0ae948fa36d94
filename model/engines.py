"""The loaded scorers, ``score(batch) -> NSFW probabilities``: the network with its weights on
TensorFlow, built once and called as one compiled graph per batch (:class:`TensorFlowScorer`),
and the packaged ONNX file on onnxruntime (:class:`OnnxRuntimeScorer`)."""

from __future__ import annotations

import logging

import numpy as np

from .network import build_resnet50_thin
from .pictures.yahoo_steps import MEAN_BGR
from .precision import AUTO, fastest_precision, warn_if_onednn_off
from .scorer import EXACT_PRECISION, INPUT_SHAPE, Scorer, cpu_threads, windows_per_side
from .weights import WeightsSource, load_into, load_weights, locate, model_id, weights_id

log = logging.getLogger(__name__)


def set_threads(intra_op: int, inter_op: int, parts: int = 1) -> None:
    """Size TensorFlow's thread pools for scoring a batch in ``parts`` concurrent pieces:
    0 = intra-op: the cores shared among the pieces; inter-op: one per piece (with one piece,
    TensorFlow's default). Only possible before the TensorFlow runtime starts in this process;
    later requests are logged and ignored.

    Setting the intra-op size explicitly, even to what TensorFlow would choose itself, measured
    4-5% faster at batch 32 than leaving it unset (benchmarks/model_speed.py)."""
    import tensorflow as tf

    intra_op = intra_op or max(1, cpu_threads() // parts)
    inter_op = inter_op or (parts if parts > 1 else 0)
    for setter, getter, wanted in (
        (tf.config.threading.set_intra_op_parallelism_threads, tf.config.threading.get_intra_op_parallelism_threads, intra_op),
        (tf.config.threading.set_inter_op_parallelism_threads, tf.config.threading.get_inter_op_parallelism_threads, inter_op),
    ):
        if wanted and getter() != wanted:
            try:
                setter(wanted)
            except RuntimeError:
                log.warning("TensorFlow already started in this process; thread setting %d ignored", wanted)


class TensorFlowScorer(Scorer):
    """open_nsfw on TensorFlow. ``score(batch)`` returns the NSFW probability per image.

    ``parallel_batches``: each batch is split into this many pieces, scored concurrently on
    TensorFlow's inter-op threads with one intra-op thread each (0: one piece per core). The
    pieces never wait for each other inside a layer, which measured about 5% faster than one
    piece on all cores (benchmarks/model_speed.py); scores move by ~1e-8 with the split.

    ``score_pixels`` takes the views' uint8 pixels and makes the network input inside the graph;
    ``score`` takes that float input made already; ``score_windows`` takes region maps' pixels
    (``model.pictures.preprocess.region_map_view``) and scores every 224-pixel window in them.
    ``warm_up``: trace the graphs on views' pixels (a batch of one, and one in pieces) as part of
    loading, so that a job's first batches run at full speed. Without it each graph is traced at
    its first use (0.3-0.45 s each): ``nsfw-scan score`` of one file then traces only the one it
    needs; the region maps' graphs are traced at their first use."""

    def __init__(self, source: WeightsSource = WeightsSource(), use_cache: bool = True,
                 intra_op_threads: int = 0, inter_op_threads: int = 0, precision: str = EXACT_PRECISION,
                 parallel_batches: int = 0, warm_up: bool = True):
        import tensorflow as tf

        parts = parallel_batches or cpu_threads()
        set_threads(intra_op_threads, inter_op_threads, parts)
        warn_if_onednn_off()
        # ``auto``: the precision fastest on this CPU, measured once per process (``model.precision``)
        self.precision_choice = fastest_precision() if precision == AUTO else None
        precision = self.precision_choice.precision if self.precision_choice else precision
        loaded = load_weights(source, use_cache=use_cache)
        self.model = build_resnet50_thin(precision)
        load_into(self.model, loaded.weights)
        self.model_id = model_id(loaded.model_id, precision)
        self.weights_from_cache = loaded.from_cache
        model = self.model

        self._parts = parts
        self.threads = tf.config.threading.get_intra_op_parallelism_threads() * parts  # cores the model uses
        side = INPUT_SHAPE[0]
        self._on_input = _graphs(model, tf.float32, lambda batch: batch, parts, side, side)
        # uint8 pixels in: the float input is made inside the graph, on TensorFlow's threads
        on_pixels = lambda pixels: tf.cast(pixels, tf.float32) - MEAN_BGR  # noqa: E731
        self._on_pixels = _graphs(model, tf.uint8, on_pixels, parts, side, side)
        # region maps (``score_windows``): one pair of graphs for every size (traced once, at the
        # first map; a size new to the process then costs about 0.2 s, against 0.6-1.5 s for a
        # pair traced per size, at the same speed after)
        self._on_maps = _graphs(model, tf.uint8, on_pixels, parts, None, None)
        for size in {1, parts} if warm_up else ():
            self.score_pixels(np.zeros((size, *INPUT_SHAPE), np.uint8))

    def score(self, batch: np.ndarray) -> np.ndarray:
        """``batch``: float32 ``[N, 224, 224, 3]``, the network input -> float32 ``[N]``."""
        return self._run(self._on_input, np.asarray(batch, dtype=np.float32))[:, 0, 0]

    def score_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels``: uint8 BGR views ``[N, 224, 224, 3]`` -> float32 ``[N]``; the same scores as
        ``score`` of their network input, without making it in numpy in the calling thread (a
        float copy four times the pixels' size, made while the model's threads wait)."""
        if pixels.dtype != np.uint8:
            raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
        return self._run(self._on_pixels, pixels)[:, 0, 0]

    def score_windows(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels``: uint8 BGR region maps of one size ``[N, H, W, 3]`` (``H`` and ``W``: 224
        and a multiple of 32) -> float32 ``[N, rows, columns]``: the NSFW probability of each
        224-pixel window in them (``model.network``)."""
        if pixels.dtype != np.uint8:
            raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
        return self._run(self._on_maps, pixels)

    def _run(self, graphs, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, windows_per_side(batch.shape[1]), windows_per_side(batch.shape[2])), np.float32)
        whole, in_pieces = graphs
        return (in_pieces if self._parts > 1 and len(batch) >= self._parts else whole)(batch).numpy()


def _graphs(model, dtype, to_input, parts: int, height: int | None, width: int | None):
    """The two compiled graphs of ``model`` on a batch of ``dtype`` of ``height`` x ``width``
    pixels (``None``: any) (``to_input`` makes the network's float input of it), each giving the NSFW probability of
    every window ``[N, rows, columns]``: the whole batch at once, and the batch in ``parts``
    concurrent pieces (at least ``parts`` images), each piece's input made on its own thread."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None, height, width, 3), dtype)]

    @tf.function(input_signature=signature)
    def whole(batch):
        return model(to_input(batch), training=False)[..., 1]

    @tf.function(input_signature=signature)
    def in_pieces(batch):
        n = tf.shape(batch)[0]
        sizes = n // parts + tf.cast(tf.range(parts) < n % parts, tf.int32)
        pieces = tf.split(batch, sizes, num=parts)
        return tf.concat([model(to_input(piece), training=False)[..., 1] for piece in pieces], axis=0)

    return whole, in_pieces


class OnnxRuntimeScorer(Scorer):
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
