"""What every loaded scorer shares: the cores it sizes to, and how it reports itself.

Scorers are reached through Beam's cross-process model proxies when a model is shared among
processes (``model_sharing``); only methods pass through those, so what a caller needs to know
of a scorer is asked through methods here.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np

INPUT_SHAPE = (224, 224, 3)  # a view's pixels: ``model.network``'s input for one window
WINDOW_STRIDE = 32  # pixels of a larger input between neighbouring windows (the network's total stride)


def windows_per_side(side: int) -> int:
    """Windows along an input side of ``side`` pixels (224 + a multiple of 32)."""
    return (side - INPUT_SHAPE[0]) // WINDOW_STRIDE + 1

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
        as ``score`` of their network input (``model.pictures.yahoo_steps.network_input``)."""
        from .pictures.yahoo_steps import network_input

        return self.score(network_input(pixels))

    def score_windows(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels``: uint8 BGR region maps ``[N, H, W, 3]`` -> float32 ``[N, rows, columns]``, the
        score of every 224-pixel window (``model.network``): engines whose network takes 224x224
        inputs only have none."""
        raise ValueError(f"the {type(self).__name__} engine scores 224x224 views only, not regions: "
                         "use the tensorflow engine, or --views whole")

    def score_views(self, views) -> list[tuple[float, tuple[int, int] | None]]:
        """Each of ``views``' pixels (``model.pictures.yahoo_steps.View.pixels``: 224x224 views and region
        maps, in any order) scored, as ``(score, window)``: a view's score and ``None``, or a
        region map's highest window's score and its (row, column), the first of equals. Views of
        one size are scored together, as one batch, and the batches of different sizes at the same
        time: a batch of one map alone would keep one core busy (a batch runs in one piece per
        core, ``model.engines``), while two such run side by side."""
        by_size: dict[tuple, list[int]] = {}
        for index, pixels in enumerate(views):
            by_size.setdefault(pixels.shape, []).append(index)
        scored: list = [None] * len(views)

        def score_size(shape, indices):
            batch = np.stack([views[i] for i in indices])
            if shape == INPUT_SHAPE:
                for i, score in zip(indices, self.score_pixels(batch).tolist()):
                    scored[i] = (score, None)
                return
            for i, windows in zip(indices, self.score_windows(batch)):
                row, column = np.unravel_index(int(np.argmax(windows)), windows.shape)
                scored[i] = (float(windows[row, column]), (int(row), int(column)))

        if len(by_size) == 1:
            score_size(*next(iter(by_size.items())))
            return scored
        with concurrent.futures.ThreadPoolExecutor(min(len(by_size), cpu_threads())) as pool:
            for done in [pool.submit(score_size, shape, indices) for shape, indices in by_size.items()]:
                done.result()
        return scored

    def take_load_report(self) -> float | None:
        """The seconds this scorer took to load, exactly once (then ``None``), so that a caller
        counts each load where its metrics are live."""
        if not self._load_unreported:
            return None
        self._load_unreported = False
        return self.load_seconds or 0.0
