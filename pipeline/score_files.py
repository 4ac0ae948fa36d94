"""``nsfw-scan score``: score a handful of files or URIs in this process, one JSON line each."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from ..transforms.load import Ahead
from ..transforms.manifests import Entry
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
    """Results in input order, scoring ``config.batch.max_size`` images per model call. Files
    are read and decoded as the job does (``config.loading()``: its reading and decoding
    pools, retries and limits), a batch ahead: the next batch is read and decoded while this
    one is scored. ``scorer``: an engine from ``model.engines.make_engine``."""
    loading, batch = config.loading().start(), config.batch.max_size

    def loaded() -> Iterator[tuple[dict, np.ndarray] | dict]:
        ahead = Ahead(batch)
        for line, path in enumerate(paths, 1):
            entry = Entry(path, {}, "command line", line)
            future = loading.submit(entry)
            if future is None:
                yield loading.load(entry)
            else:
                yield from (result for result, _ in ahead.add(future))
        yield from (result for result, _ in ahead.drain())

    results = iter(loaded())
    for chunk in iter(lambda: list(itertools.islice(results, batch)), []):
        decoded = [item[1] for item in chunk if not isinstance(item, dict)]
        scores = iter(scorer.score(np.stack(decoded)).tolist() if decoded else [])
        for item in chunk:
            if isinstance(item, dict):  # a finished error row
                yield FileResult(item["uri"], error_kind=item["error_kind"], error=item["error"])
            else:
                score = round(float(next(scores)), 6)
                yield FileResult(item[0]["uri"], score, config.thresholds.decide(score))
