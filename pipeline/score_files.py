"""``nsfw-scan score``: score a handful of files or URIs in this process, one JSON line each."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from ..model.preprocess import ImageError, load_image
from ..transforms.load import decode_pool
from ..transforms.read import read_bytes
from .config import Config


@dataclasses.dataclass
class FileResult:
    path: str
    score: float | None = None
    decision: str = "error"
    error_kind: str | None = None  # model.errors.ERROR_KINDS
    error: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_paths(paths: Iterable[str], config: Config, scorer) -> Iterator[FileResult]:
    """Results in input order, scoring ``config.batch.max_size`` images per model call; the
    next batch is read and decoded (by ``decoding.threads`` threads) while this one is
    scored. ``scorer``: an engine from ``model.engines.make_engine``."""
    pool = decode_pool(config.decoding.threads)
    paths = iter(paths)
    chunks = iter(lambda: list(itertools.islice(paths, config.batch.max_size)), [])

    def load(path: str) -> tuple[FileResult, np.ndarray | None]:
        result = FileResult(path)
        try:
            data = read_bytes(path, config.limits.max_bytes, config.read_policy())
            return result, load_image(data, config.loader, config.limits.max_pixels).array
        except ImageError as exc:
            result.error_kind, result.error = exc.kind, str(exc)
            return result, None

    def score(loaded: list[tuple[FileResult, np.ndarray | None]]) -> list[FileResult]:
        decoded = [(result, array) for result, array in loaded if array is not None]
        if decoded:
            scores = scorer.score(np.stack([array for _, array in decoded]))
            for (result, _), value in zip(decoded, scores):
                result.score = round(float(value), 6)
                result.decision = config.thresholds.decide(result.score)
        return [result for result, _ in loaded]

    if pool is None:
        for chunk in chunks:
            yield from score([load(path) for path in chunk])
        return
    pending = None
    for chunk in chunks:
        submitted = [pool.submit(load, path) for path in chunk]
        if pending:
            yield from score([future.result() for future in pending])
        pending = submitted
    if pending:
        yield from score([future.result() for future in pending])
