"""``nsfw-scan score``: score a handful of files or URIs in this process, one JSON line each."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

from ..model.decision import NOT_SCORED
from ..storage.schema import Column
from ..transforms.elements import Entry, Failure, Loaded, Scored, ScoredView
from ..transforms.read_and_decode import Ahead
from ..transforms.results import failed_row, scored_row
from .config import Config


@dataclasses.dataclass
class FileResult:
    path: str
    score: float | None = None
    decision: str = NOT_SCORED
    error_kind: str | None = None  # model.errors.ERROR_KINDS
    error: str | None = None
    view: str | None = None  # the view that gave the score (transforms.results.scored_row)
    yahoo_score: float | None = None
    pdq: str | None = None  # the PDQ hash (model.pictures.pdq) and, with a hash list, its nearest match
    match: str | None = None
    match_distance: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_entries(entries: Iterable[Entry], loading, scorer, thresholds, batch: int) -> Iterator[dict]:
    """A finished row per manifest ``Entry``, in order: scored (``scored_row``, the model that
    ran named) or a failure's row. Files are read and decoded by ``loading`` (a started
    ``transforms.read_and_decode.Loading``: its reading and decoding pools, retries and limits), a batch
    ahead: the next batch is read and decoded while this one is scored, ``batch`` images per
    model call. ``scorer``: a loaded one (``spec.load()``, ``model.engine_specs``)."""

    def loaded() -> Iterator[Loaded | Failure]:
        ahead = Ahead(batch)
        for entry in entries:
            future = loading.submit(entry)
            if future is None:
                yield loading.load(entry)
            else:
                yield from (result for result, _ in ahead.add(future))
        yield from (result for result, _ in ahead.drain())

    results = iter(loaded())
    for chunk in iter(lambda: list(itertools.islice(results, batch)), []):
        decoded = [view.pixels for result in chunk if not result.failed for view in result.views]
        scores = iter([scored for start in range(0, len(decoded), batch)
                       for scored in scorer.score_views(decoded[start:start + batch])])
        for result in chunk:  # the scores come in the chunk's order
            if result.failed:
                yield failed_row(result)
                continue
            views = tuple(ScoredView(key, score, scorer.model_id, window)
                          for key, (score, window) in zip(result.keys(), scores))
            yield scored_row(Scored(result.image, views), thresholds)


def score_paths(paths: Iterable[str], config: Config, scorer) -> Iterator[FileResult]:
    """Results in input order, scored as :func:`score_entries` scores them with the configured
    loading and ``config.batch.max_size`` images per model call."""
    entries = (Entry(path, {}, "command line", line) for line, path in enumerate(paths, 1))
    for row in score_entries(entries, config.loading().start(), scorer, config.thresholds, config.batch.max_size):
        if row[Column.SCORE] is None:
            yield FileResult(row[Column.URI], error_kind=row[Column.ERROR_KIND], error=row[Column.ERROR])
            continue
        score = round(row[Column.SCORE], 6)
        yield FileResult(row[Column.URI], score, config.thresholds.decide(score), view=row[Column.VIEW],
                         yahoo_score=round(row[Column.YAHOO_SCORE], 6), pdq=row[Column.PDQ], match=row[Column.MATCH],
                         match_distance=row[Column.MATCH_DISTANCE])
