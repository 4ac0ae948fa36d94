"""``nsfw-scan redecide DIR``: every earlier row of an output folder decided again at the
configured thresholds, so that a team's new thresholds apply to what was already scored.

A row whose stored score gives the exact decision at the new thresholds is decided again from
it: every exact row, and a row of the cascade's first pass (``exact`` false) farther than
``cascade.margin`` from both new thresholds, as the cascade itself keeps them. The other
first-pass rows are scored again here by Yahoo's exact steps (read again, Yahoo's loader, the
float32 model), as the cascade would have scored them in a run at these thresholds, so every
decision stays the exact one. A file that cannot be read again keeps its row as it was: the
row's ``safe_below``/``nsfw_from`` say at which thresholds it was decided. Error rows have no
score and stay. Each result file that changes is rewritten whole (a local file by rename, an
object created whole), under the folder's lock.
"""

from __future__ import annotations

import collections
import logging

import pyarrow as pa

from ..model.preprocess import EXACT_LOADER
from ..model.scorer_base import EXACT_PRECISION
from ..model.specs import TensorFlowSpec
from ..storage.files import read_table, write_table
from ..storage.lock import OutputLock
from ..storage.options import StorageOptions
from ..storage.paths import shown
from ..storage.schema import RESERVED, Column, output_schema
from ..transforms.elements import Entry
from ..transforms.results import redecide as redecide_row
from ..transforms.results import with_result_columns
from .config import Config
from .report import finished_result_files
from .score_files import score_entries

log = logging.getLogger(__name__)

# what scoring a row's file again gives it (its URI, manifest columns, source and duplicates stay)
SCORED_COLUMNS = [name for name in RESERVED if name not in (Column.URI, Column.SOURCE_MANIFEST, Column.SOURCE_LINE,
                                                            Column.DUPLICATES)]


def redecide(directory: str, config: Config, storage: StorageOptions) -> dict:
    """Decide every scored row in ``directory`` again at ``config.thresholds``; returns counts:
    ``redecided`` (from the stored score), ``rescored`` (by the exact steps), ``kept`` (could not be
    read again: decided at their own thresholds still), ``unchanged`` (already at these
    thresholds), ``errors`` (rows without a score) and ``files`` rewritten."""
    thresholds, margin = config.thresholds, config.cascade.margin
    target = (thresholds.safe_below, thresholds.nsfw_from)
    files = finished_result_files(directory)
    counts = collections.Counter()
    scoring = None  # the exact steps (loading, scorer), loaded when a first row needs them
    with OutputLock(directory, storage) as lock:
        for path in files:  # one file at a time: memory holds one result file's rows
            table = read_table(path)
            schema = output_schema({f.name: f.type for f in table.schema if f.name not in RESERVED})
            rows = [with_result_columns(row, schema.names) for row in table.to_pylist()]
            before = counts["redecided"] + counts["rescored"]
            again = []  # first-pass rows near the new thresholds, by index
            for i, row in enumerate(rows):
                if row[Column.SCORE] is None:
                    counts["errors"] += 1
                elif (row[Column.SAFE_BELOW], row[Column.NSFW_FROM]) == target:
                    counts["unchanged"] += 1
                elif row[Column.EXACT] is False and thresholds.near(row[Column.SCORE], margin):
                    again.append(i)
                else:
                    rows[i] = redecide_row(row, thresholds)
                    counts["redecided"] += 1
            if again:
                log.info("%s: %d rows of the first pass lie within %g of the new thresholds; scoring them again by "
                         "the exact steps", shown(path), len(again), margin)
                if scoring is None:
                    scoring = (config.loading(EXACT_LOADER).start(),
                               config.engine_spec(TensorFlowSpec.name, EXACT_PRECISION).load())
                loading, scorer = scoring
                entries = [Entry(rows[i][Column.URI], {}, rows[i][Column.SOURCE_MANIFEST], rows[i][Column.SOURCE_LINE])
                           for i in again]
                for i, row in zip(again, score_entries(entries, loading, scorer, thresholds, config.batch.max_size)):
                    if row[Column.SCORE] is None:
                        log.info("kept the row of %s as it was (decided at its own thresholds): %s",
                                 row[Column.URI], row[Column.ERROR])
                        counts["kept"] += 1
                    else:  # the exact steps' facts and score: exact true, decided at the new thresholds
                        rows[i] = {**rows[i], **{name: row[name] for name in SCORED_COLUMNS}}
                        counts["rescored"] += 1
            if counts["redecided"] + counts["rescored"] > before:
                lock.check()  # never rewrite anything unless this command still holds the folder
                write_table(path, pa.Table.from_pylist(rows, schema=schema))
                counts["files"] += 1
    return {"thresholds": {"safe_below": thresholds.safe_below, "nsfw_from": thresholds.nsfw_from},
            **{key: counts[key] for key in ("redecided", "rescored", "kept", "unchanged", "errors", "files")}}


def format_redecided(directory: str, result: dict) -> str:
    t = result["thresholds"]
    return (f"rows of {shown(directory)} decided at safe below {t['safe_below']:g}, nsfw from {t['nsfw_from']:g}: "
            f"{result['redecided']} from their stored scores, {result['rescored']} scored again by the exact steps "
            f"(first-pass rows near the new thresholds), {result['unchanged']} already at them"
            + (f"; {result['kept']} could not be read again and keep their decision at their own thresholds"
               if result["kept"] else "")
            + f"; {result['errors']} error rows have no score; {result['files']} result files rewritten")
