"""``nsfw-scan redecide DIR``: every earlier row of an output folder decided again at the
configured thresholds, so that a team's new thresholds apply to what was already scored.

A row whose stored score gives the exact decision at the new thresholds is decided again from
it: every exact row, and a row of the cascade's first pass (``exact`` false) farther than
``cascade.margin`` from both new thresholds, as the cascade itself keeps them. The other
first-pass rows are scored again here by Yahoo's exact steps (read again, Yahoo's loader, the
float32 model), as the cascade would have scored them in a run at these thresholds, so every
decision stays the exact one.

Only the thresholds come from the configuration given (with ``cascade.margin`` and how files are
read: retries, timeouts, the address guard, pools, batch size): a row is scored again with its
own run's views, frames, videos, limits, weights and hash list, as the run recorded them in its
result files (``run.SCORING_KEY``), so a ``thresholds.yaml`` of ``nsfw-scan calibrate`` changes
nothing else. A row keeps its row as it was, decided at its own thresholds (the row's
``safe_below``/``nsfw_from`` say which), when it cannot be scored again as its run scored it: its
file cannot be read, its file has changed since (another ``sha256``: the row stays true of the
content it describes), or its run's weights are gone or are no longer the ones its ``model``
names. Rows of versions that recorded no settings are scored again with the configuration given,
as those versions did. Error rows have no score and stay. Each result
file that changes is rewritten whole (a local file by rename, an object created whole), under the
folder's lock.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging

import pyarrow as pa

from ..model.decision import AS_PICTURE
from ..model.engine_specs import TensorFlowSpec
from ..model.errors import UsageError
from ..model.hash_list import Matching
from ..model.pictures.preprocess import EXACT_LOADER
from ..model.scorer import EXACT_PRECISION
from ..storage.lock import OutputLock
from ..storage.options import StorageOptions
from ..storage.paths import shown
from ..storage.results_folder import ResultsFolder
from ..storage.schema import RESERVED, SCORED_AGAIN, Column, output_schema
from ..transforms.elements import Entry
from ..transforms.results import redecide as redecide_row
from .config import Config, ConfigError, Frames, Limits, Regions, Video, Weights
from .run import SCORING_KEY
from .score import score_entries

log = logging.getLogger(__name__)



SECTIONS = {"frames": Frames, "video": Video, "regions": Regions, "limits": Limits, "matching": Matching}


def run_config(config: Config, schema: pa.Schema) -> Config | None:
    """The configuration a result file's rows were scored with: ``config`` (its thresholds, margin
    and reading) with the views, frames, videos, limits, weights and hash list the file's run
    recorded; ``None`` when it recorded none (or none that can be used)."""
    recorded = (schema.metadata or {}).get(SCORING_KEY)
    if recorded is None:
        return None
    try:
        record = json.loads(recorded)
        if "regions" not in record:  # a run before regions: its views were whole ones, its frames counted as they are
            record.update(regions={}, video={**record["video"], **dataclasses.asdict(AS_PICTURE)},
                          views="whole" if record["views"] == "all" else record["views"])
        weights = {**record["weights"], "trusted": config.weights.trusted}  # trust is the operator's, never a file's
        return dataclasses.replace(config, views=record["views"], weights=Weights(**weights),
                                   **{name: kind(**record[name]) for name, kind in SECTIONS.items()}).validate("run")
    except (ValueError, TypeError, KeyError, ConfigError):
        return None


class ExactSteps:
    """Yahoo's exact steps (its loader, the float32 TensorFlow model) for each run's settings,
    loaded when a first row needs them; the weights are those its rows name, or none."""

    def __init__(self):
        self._loaded: dict[str, tuple | str] = {}

    def of(self, config: Config) -> tuple | str:
        """(loading, scorer) for ``config``, or why they cannot be had."""
        key = repr((config.view_policy(), config.limits, config.weights, config.matching))
        if key not in self._loaded:
            try:
                self._loaded[key] = (config.loading(EXACT_LOADER).start(),
                                     config.engine_spec(TensorFlowSpec.name, EXACT_PRECISION).load())
            except UsageError as exc:  # its weights gone, its hash list unreadable
                self._loaded[key] = str(exc)
        return self._loaded[key]


def same_weights(model: str | None, scorer_id: str) -> bool:
    """Whether a row's ``model`` names the weights of ``scorer_id`` (at any precision)."""
    weights = scorer_id.split(":")[:3]  # open_nsfw:<kind>:<digest>
    return model is not None and model.split(":")[:3] == weights


def redecide(directory: str, config: Config, storage: StorageOptions) -> dict:
    """Decide every scored row in ``directory`` again at ``config.thresholds``; returns counts:
    ``redecided`` (from the stored score), ``rescored`` (by the exact steps), ``kept`` (could not be
    read again), ``changed`` (the file has changed since its run), ``unscorable`` (its run's
    weights no longer at hand): these three decided at their own thresholds still;
    ``unchanged`` (already at these thresholds), ``errors`` (rows without a score) and ``files``
    rewritten."""
    thresholds, margin = config.thresholds, config.cascade.margin
    target = (thresholds.safe_below, thresholds.nsfw_from)
    folder = ResultsFolder(directory)
    files = folder.files()
    counts = collections.Counter()
    steps = ExactSteps()
    with OutputLock(directory, storage) as lock:
        for path in files:  # one file at a time: memory holds one result file's rows
            table = folder.read(path)
            schema = output_schema({f.name: f.type for f in table.schema if f.name not in RESERVED})
            schema = schema.with_metadata(table.schema.metadata)  # the run's record stays with its rows
            rows = table.select(schema.names).to_pylist()
            before = counts["redecided"] + counts["rescored"]
            again = []  # first-pass rows near the new thresholds, by index
            recorded = run_config(config, table.schema)
            rule = (recorded or config).first_pass_rule()  # the new thresholds, the run's views
            for i, row in enumerate(rows):
                if row[Column.SCORE] is None:
                    counts["errors"] += 1
                elif (row[Column.SAFE_BELOW], row[Column.NSFW_FROM]) == target:
                    counts["unchanged"] += 1
                elif row[Column.EXACT] is False and not rule.keeps_row(row):
                    again.append(i)
                else:
                    rows[i] = redecide_row(row, thresholds)
                    counts["redecided"] += 1
            if again:
                log.info("%s: %d rows of the first pass lie within %g of the new thresholds; scoring them again by "
                         "the exact steps", shown(path), len(again), margin)
                if recorded is None:
                    log.info("%s: its run recorded no settings (written by an older nsfw-scan): its rows are scored "
                             "again with this command's views, limits, weights and hash list", shown(path))
                rescore(rows, again, recorded or config, steps, path, counts)
            if counts["redecided"] + counts["rescored"] > before:
                folder.rewrite(path, pa.Table.from_pylist(rows, schema=schema), lock)
                counts["files"] += 1
    return {"thresholds": {"safe_below": thresholds.safe_below, "nsfw_from": thresholds.nsfw_from},
            **{key: counts[key] for key in ("redecided", "rescored", "kept", "changed", "unscorable", "unchanged",
                                            "errors", "files")}}


def rescore(rows: list[dict], again: list[int], config: Config, steps: ExactSteps, path: str,
            counts: collections.Counter) -> None:
    """The rows ``again`` of one result file scored again by the exact steps with their run's
    settings (``config``), in place; a row that cannot be scored again as its run scored it stays."""
    loaded = steps.of(config)
    if isinstance(loaded, str):
        log.info("%s: kept %d rows as they were (decided at their own thresholds): %s", shown(path), len(again), loaded)
        counts["unscorable"] += len(again)
        return
    loading, scorer = loaded
    ours = [i for i in again if same_weights(rows[i][Column.MODEL], scorer.model_id)]
    if len(ours) < len(again):
        log.info("%s: kept %d rows as they were (decided at their own thresholds): their model is not %s, the "
                 "weights their run names now", shown(path), len(again) - len(ours), scorer.model_id)
        counts["unscorable"] += len(again) - len(ours)
    entries = [Entry(rows[i][Column.URI], {}, rows[i][Column.SOURCE_MANIFEST], rows[i][Column.SOURCE_LINE])
               for i in ours]
    for i, row in zip(ours, score_entries(entries, loading, scorer, config.thresholds, config.batch.max_size)):
        if row[Column.SCORE] is None:
            log.info("kept the row of %s as it was (decided at its own thresholds): %s", row[Column.URI],
                     row[Column.ERROR])
            counts["kept"] += 1
        elif row[Column.SHA256] != rows[i][Column.SHA256]:
            log.info("kept the row of %s as it was (decided at its own thresholds): the file has changed since its "
                     "run (sha256 %s, was %s); the row describes the content it was scored on", row[Column.URI],
                     row[Column.SHA256], rows[i][Column.SHA256])
            counts["changed"] += 1
        else:  # the exact steps' facts and score: exact true, decided at the new thresholds
            rows[i] = {**rows[i], **{name: row[name] for name in SCORED_AGAIN}}
            counts["rescored"] += 1


def format_redecided(directory: str, result: dict) -> str:
    t = result["thresholds"]
    return (f"rows of {shown(directory)} decided at safe below {t['safe_below']:g}, nsfw from {t['nsfw_from']:g}: "
            f"{result['redecided']} from their stored scores, {result['rescored']} scored again by the exact steps "
            f"(first-pass rows near the new thresholds), {result['unchanged']} already at them"
            + (f"; {result['kept']} could not be read again and keep their decision at their own thresholds"
               if result["kept"] else "")
            + (f"; {result['changed']} files have changed since their run (another sha256): their rows keep the "
               f"decision of the content they describe, at their own thresholds" if result["changed"] else "")
            + (f"; {result['unscorable']} could not be scored again as their run scored them (its settings or "
               f"weights; see the log) and keep their decision at their own thresholds" if result["unscorable"] else "")
            + f"; {result['errors']} error rows have no score; {result['files']} result files rewritten")
