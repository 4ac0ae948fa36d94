"""``nsfw-scan review DIR``: the page a moderator works through, ``DIR/_review/index.html``.

The page lists, from every finished run in ``DIR`` (one item per URI: its newest row):

1. the review band (``review`` rows), then
2. an audit sample of the rows decided automatically: ``--audit`` of the ``nsfw`` rows and as
   much of the ``safe`` ones, at least ``--audit-min`` of each, drawn reproducibly (``--seed``),
3. then error rows whose files may still show something (a file cut short, one the job could
   not decode, a video without the video extra),

each group ``--limit`` items at most, in ``--order`` (score, highest first; URI; or manifest
and line). Only the columns the page needs are read, so a folder of millions of rows gives a
page of the chosen items.

Each item has a thumbnail of the view that gave its score (``model/pictures/thumbnail.py``; a region
also outlined on the whole picture), made here from the row's URI through the job's readers and
settings (``--config``: limits, retries, timeouts, the http address guard), re-encoded as a small
JPEG in ``DIR/_review/thumbs/`` (named by URI and view: a second run reuses them), in parallel,
with progress. An upload that cannot be read or shown is listed with the reason.

The page (``review_page.html`` with the items in it) needs no server and no network: it opens
from disk. Thumbnails are blurred and grey until the reviewer reveals one; the keyboard moves
through the queue and labels it; labels are kept in the browser's storage, and **Download
labels** saves ``labels.csv`` (``uri,label,reviewed_at,score,decision,safe_below,nsfw_from``), which
``nsfw-scan calibrate --labels`` and ``nsfw-scan hashes --labels`` read as it is. Everything
on the page that came from a manifest or an upload is data, set as text by the page's script.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import BeamIOError

from ..model.errors import Unscorable, printable
from ..model.pictures.thumbnail import thumbnails
from ..storage.filesystems import FileSystems
from ..storage.layout import REVIEW_DIR
from ..storage.paths import shown
from ..storage.read import read_bytes
from ..storage.results_folder import ResultsFolder, match
from ..storage.schema import Column, output_schema
from .config import Config, ConfigError
from .flags import REVIEW_GROUPS, REVIEW_ORDERS
from .report import write_bytes

log = logging.getLogger(__name__)

PAGE = "index.html"
THUMBS = "thumbs"
TEMPLATE = "review_page.html"
ITEMS_MARK = "/*ITEMS*/null"  # where the template takes the items (JSON)
SETTINGS_MARK = "/*SETTINGS*/null"
ORDERS = dict(zip(REVIEW_ORDERS, ([(Column.SCORE, "descending"), (Column.URI, "ascending")],  # score
                                  [(Column.URI, "ascending")],  # uri
                                  [(Column.SOURCE_MANIFEST, "ascending"), (Column.SOURCE_LINE, "ascending")])))  # manifest
# errors of files that were read but could not be scored: a thumbnail may still show what they hold
SHOWABLE_ERRORS = ("truncated", "undecodable", "unsupported_format")
COLUMNS = (Column.URI, Column.SCORE, Column.DECISION, Column.SAFE_BELOW, Column.NSFW_FROM, Column.ERROR_KIND,
           Column.ERROR, Column.VIEW, Column.YAHOO_SCORE, Column.MATCH, Column.MATCH_DISTANCE,
           Column.SOURCE_MANIFEST, Column.SOURCE_LINE, Column.SCORED_AT)
SCHEMA = pa.schema([output_schema({}).field(name) for name in COLUMNS])  # their types, as the job writes them
SHOWN_ERROR = 300  # characters of an error message on the page
PROGRESS_S = 5.0  # seconds between progress lines while thumbnails are made


@dataclasses.dataclass(frozen=True)
class Choice:
    """Which rows the page lists, and how."""

    decisions: tuple[str, ...] = REVIEW_GROUPS
    limit: int = 1000  # items per group at most
    audit: float = 0.01  # share of the nsfw rows, and of the safe rows, in the audit sample
    audit_min: int = 5  # ... but at least this many of each (where there are)
    seed: int = 0
    order: str = "score"
    blur: int = 24  # pixels of blur on a thumbnail until it is revealed


def _rows(directory: str) -> pa.Table:
    """The page's columns of every finished run's rows, one row per URI (its newest)."""
    tables = []
    for table in ResultsFolder(directory).tables(COLUMNS):
        tables.append(table.cast(SCHEMA))
    table = pa.concat_tables(tables)
    # rows of malformed manifest lines have no URI, and nothing to show
    table = table.filter(pc.is_valid(table.column(Column.URI))).sort_by([(Column.SCORED_AT, "descending")])
    uris = table.column(Column.URI).to_numpy(zero_copy_only=False)
    _, newest = np.unique(uris, return_index=True)
    return table.take(np.sort(newest))


def choose(directory: str, choice: Choice) -> list[tuple[str, pa.Table]]:
    """``(group, rows)`` in the page's order: the review band, the audit samples, the errors."""
    rows = _rows(directory)
    decision = rows.column(Column.DECISION)
    groups = []
    for group in choice.decisions:
        if group == "error":
            chosen = rows.filter(pc.is_in(rows.column(Column.ERROR_KIND), pa.array(SHOWABLE_ERRORS)))
        else:
            chosen = rows.filter(pc.equal(decision, group))
        if group in ("nsfw", "safe") and chosen.num_rows:  # an audit sample, the same for the same rows and seed
            wanted = min(chosen.num_rows, choice.limit, max(choice.audit_min, math.ceil(choice.audit * chosen.num_rows)))
            chosen = chosen.sort_by([(Column.URI, "ascending")])
            picked = np.random.default_rng(choice.seed).choice(chosen.num_rows, wanted, replace=False)
            chosen = chosen.take(np.sort(picked))
        chosen = chosen.sort_by(ORDERS[choice.order]).slice(0, choice.limit)
        groups.append((group, chosen))
    return groups


def thumb_name(uri: str, view: str | None) -> str:
    """The thumbnail's file name: the same for the same URI and view, on any run."""
    return hashlib.sha256(f"{uri}\n{view or ''}".encode()).hexdigest()[:40]


class Thumbnailer:
    """Makes the thumbnails of a page's items in ``folder`` (``thumbs/``), reading each upload as
    the job reads it (``config``), those already there kept."""

    def __init__(self, folder: str, config: Config):
        self.folder = folder
        self.config = config
        self.existing = {path.rsplit("/", 1)[-1] for path in match(FileSystems.join(folder, "*.jpg"))}

    def make(self, uri: str, view: str | None) -> dict:
        """The item's thumbnail fields: ``thumb`` (and ``whole`` for a region), paths from the
        page; or ``thumb_error``, why there is none."""
        name = thumb_name(uri, view)
        view_file, whole_file = f"{name}.jpg", f"{name}-whole.jpg"
        shown_as = {"thumb": f"{THUMBS}/{view_file}"}
        if whole_file in self.existing:
            shown_as["whole"] = f"{THUMBS}/{whole_file}"
        if view_file in self.existing:
            return shown_as
        limits, video = self.config.limits, self.config.video
        try:
            data = read_bytes(uri, limits.max_bytes, self.config.reading, self.config.http)
            made = thumbnails(data, view, limits.max_pixels, video.max_pixels)
        except Unscorable as exc:
            return {"thumb_error": printable(str(exc), SHOWN_ERROR)}
        except Exception as exc:  # one upload's failure is its item's, never the page's
            log.warning("thumbnail of %r failed", uri, exc_info=exc)
            return {"thumb_error": printable(f"{type(exc).__name__}: {exc}", SHOWN_ERROR)}
        if made.whole is not None:
            write_bytes(FileSystems.join(self.folder, whole_file), made.whole)
            shown_as["whole"] = f"{THUMBS}/{whole_file}"
        write_bytes(FileSystems.join(self.folder, view_file), made.view)
        return shown_as


def _value(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def _items(groups: list[tuple[str, pa.Table]]) -> list[dict]:
    items = []
    for group, rows in groups:
        for row in rows.drop_columns([Column.SCORED_AT]).to_pylist():
            items.append({"group": group, **{k: _value(v) for k, v in row.items()}})
    return items


def page_html(items: list[dict], settings: dict) -> str:
    """The page: the template with the items and settings in it as JSON that no text can break
    out of (``<``, ``>``, ``&`` and the line separators escaped)."""
    template = importlib.resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")

    def embedded(value) -> str:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    return template.replace(ITEMS_MARK, embedded(items)).replace(SETTINGS_MARK, embedded(settings))


def write_review(directory: str, config: Config, choice: Choice = Choice(), threads: int | None = None) -> dict:
    """Writes ``DIR/_review/index.html`` and the thumbnails of its items; returns what it did."""
    started = time.monotonic()
    groups = choose(directory, choice)
    items = _items(groups)
    chosen_s = time.monotonic() - started
    folder = FileSystems.join(directory, REVIEW_DIR)
    thumbs = FileSystems.join(folder, THUMBS)
    try:
        if "://" not in thumbs:
            os.makedirs(thumbs, exist_ok=True)
        maker = Thumbnailer(thumbs, config)
        reused = sum(thumb_name(item[Column.URI], item[Column.VIEW]) + ".jpg" in maker.existing for item in items)
        done, last = 0, time.monotonic()
        with ThreadPoolExecutor(threads or min(32, 2 * (os.cpu_count() or 1))) as pool:
            for item, fields in zip(items, pool.map(lambda item: maker.make(item[Column.URI], item[Column.VIEW]),
                                                    items)):
                item.update(fields)
                done += 1
                if time.monotonic() - last >= PROGRESS_S:
                    log.info("thumbnails: %d of %d", done, len(items))
                    last = time.monotonic()
        settings = {"directory": shown(directory), "labels_key": f"nsfw-scan review {directory}", "blur": choice.blur,
                    "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        page = FileSystems.join(folder, PAGE)
        write_bytes(page, page_html(items, settings).encode())
    except (OSError, BeamIOError) as exc:
        raise ConfigError(f"{shown(folder)}: cannot write the review page there ({exc}); make the folder "
                          f"writable") from exc
    counts = {group: rows.num_rows for group, rows in groups}
    failed = sum("thumb_error" in item for item in items)
    return {"directory": directory, "page": page, "items": len(items), "groups": counts, "thumbnails_made": len(items) - reused - failed,
            "thumbnails_reused": reused, "thumbnails_failed": failed, "choose_s": round(chosen_s, 3),
            "seconds": round(time.monotonic() - started, 3)}


def format_review(result: dict) -> str:
    groups = ", ".join(f"{n} {'audit ' if g in ('nsfw', 'safe') else ''}{g}" for g, n in result["groups"].items())
    return (f"review page: {shown(result['page'])} ({result['items']} items: {groups}); thumbnails: "
            f"{result['thumbnails_made']} made, {result['thumbnails_reused']} reused, "
            f"{result['thumbnails_failed']} could not be shown; open it in a browser (no server needed), "
            f"then: nsfw-scan calibrate {shown(result['directory'])} --labels labels.csv")
