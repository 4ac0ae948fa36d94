"""A fake scorer for the pipeline tests: an image's score is a fixed function of its preprocessed
array (deterministic, instant, no TensorFlow), and a spec that loads it, passed to
``pipeline.run.build`` / ``run`` as ``spec`` in place of the configured engine's."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from nsfw_scan.model.engine_specs import TensorFlowSpec
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.scorer import Scorer


def fake_score(arrays: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(arrays).mean(axis=(-3, -2, -1)) + 130) / 260, 0, 1).astype(np.float32)


def expected_score(path) -> float:
    """The fake score of the image file at ``path``."""
    with open(path, "rb") as f:
        return float(fake_score(load_image(f.read()).array))


class FakeScorer(Scorer):
    """Scores an image by the mean of its preprocessed array: deterministic, instant."""

    model_id = TensorFlowSpec().expected_model_id()  # the configured model's, so its scores are reusable
    threads = 1

    def score(self, batch: np.ndarray) -> np.ndarray:
        return fake_score(batch)


@dataclasses.dataclass(frozen=True)
class FakeSpec:
    """Loads a ``FakeScorer``, as the specs of ``model.engine_specs`` load theirs."""

    name: ClassVar[str] = "fake"
    exact: ClassVar[bool] = True  # stands in for the exact engine's spec (its model id too)

    def expected_model_id(self) -> str:
        return FakeScorer.model_id

    def load(self) -> Scorer:
        return FakeScorer()


FAKE_SPEC = FakeSpec()
