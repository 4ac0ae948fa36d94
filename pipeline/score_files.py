"""``nsfw-scan score``: score a handful of files or URIs in this process, one JSON line each."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from ..model.decision import NOT_SCORED
from ..storage.schema import Column
from ..transforms.load import Ahead
from ..transforms.manifests import Entry
from ..transforms.results import finish_views
from .config import Config


@dataclasses.dataclass
class FileResult:
    path: str
    score: float | None = None
    decision: str = NOT_SCORED
    error_kind: str | None = None  # model.errors.ERROR_KINDS
    error: str | None = None
    view: str | None = None  # the view that gave the score (transforms.results.finish_views)
    yahoo_score: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_paths(paths: Iterable[str], config: Config, scorer) -> Iterator[FileResult]:
    """Results in input order, scoring ``config.batch.max_size`` images per model call. Files
    are read and decoded as the job does (``config.loading()``: its reading and decoding
    pools, retries and limits), a batch ahead: the next batch is read and decoded while this
    one is scored. ``scorer``: a loaded one (``spec.load()``, ``model.engines``)."""
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
        decoded = [view.array for item in chunk if not isinstance(item, dict) for view in item[1]]
        scores = iter([score for start in range(0, len(decoded), batch)
                       for score in scorer.score(np.stack(decoded[start:start + batch])).tolist()])
        for item in chunk:
            if isinstance(item, dict):  # a finished error row
                yield FileResult(item[Column.URI], error_kind=item[Column.ERROR_KIND], error=item[Column.ERROR])
                continue
            row, views = item
            row = finish_views(row, [(view.name, float(next(scores)), None) for view in views], config.thresholds)
            score = round(row[Column.SCORE], 6)
            yield FileResult(row[Column.URI], score, config.thresholds.decide(score), view=row[Column.VIEW],
                             yahoo_score=round(row[Column.YAHOO_SCORE], 6))
