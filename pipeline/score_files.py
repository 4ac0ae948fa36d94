"""``nsfw-scan score``: score a handful of files or URIs in this process, one JSON line each."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from ..model.preprocess import ImageError, load_image
from ..transforms.read import read_bytes
from .config import Config


@dataclasses.dataclass
class FileResult:
    path: str
    score: float | None = None
    decision: str = "error"
    error: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_paths(paths: Iterable[str], config: Config, scorer) -> Iterator[FileResult]:
    """Results in input order, scoring ``config.batch.max_size`` images per model call.
    ``scorer``: an engine from ``model.engines.make_engine``."""
    paths = iter(paths)
    while chunk := list(itertools.islice(paths, config.batch.max_size)):
        results, arrays, scored = [], [], []
        for path in chunk:
            result = FileResult(path)
            try:
                data = read_bytes(path, config.limits.max_bytes)
                arrays.append(load_image(data, config.loader, config.limits.max_pixels).array)
                scored.append(result)
            except ImageError as exc:
                result.error = str(exc)
            results.append(result)
        if arrays:
            for result, score in zip(scored, scorer.score(np.stack(arrays))):
                result.score = round(float(score), 6)
                result.decision = config.thresholds.decide(result.score)
        yield from results
