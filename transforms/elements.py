"""The job's elements: what travels between its steps, one type per step.

``docs/architecture.md`` shows the flow, step by step, with the type in and out of each.
Files that fail travel as :class:`Failure` on a tagged output beside the others; ``failed``
tells the two results of loading apart. A row, the job's output, is a dict keyed by
``storage.schema.Column`` (``transforms/results.py`` makes it from these).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import ClassVar

from ..model.decision import AS_PICTURE, OwnThresholds
from ..model.errors import Unscorable
from ..model.hash_list import Match
from ..model.pictures.pdq import Pdq
from ..model.pictures.preprocess import RegionMap
from ..model.pictures.yahoo_steps import View


def bad_line_key(manifest: str, line: int) -> str:
    """The de-duplication key of an unusable manifest line: its own, never a URI's."""
    return f"\0{manifest}:{line}"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One manifest line: a URI with its pass-through columns, or why the line is unusable."""

    uri: str | None
    columns: dict
    manifest: str  # the manifest's path or URI, as matched
    line: int  # line (or Parquet row) number, from 1
    error: str | None = None  # what is wrong with the line (error kind bad_manifest_line)
    duplicates: int = 0  # other manifest lines naming the same URI (set by NewEntries)

    @property
    def dedup_key(self) -> str:
        """Entries with the same URI are one image; each unusable line stays on its own."""
        return self.uri if self.uri is not None else bad_line_key(self.manifest, self.line)

    @property
    def position(self) -> tuple[str, int]:
        return self.manifest, self.line


@dataclasses.dataclass(frozen=True)
class Read:
    """A file whose bytes were read; only their size and hash travel on."""

    entry: Entry
    size: int
    sha256: str
    failed: ClassVar[bool] = False

    @classmethod
    def of(cls, entry: Entry, data: bytes) -> "Read":
        return cls(entry, len(data), hashlib.sha256(data).hexdigest())


@dataclasses.dataclass(frozen=True)
class Image:
    """What a row says of a decoded file (its pixels travel apart, as views)."""

    read: Read
    loader: str
    width: int
    height: int
    frames: int  # frames in the file
    views: int  # views of it to score (each view's hash travels with it, ``ViewOf.pdq``)
    match: Match | None = None  # the nearest listed hash to any view's, within the distance
    match_checked: bool | None = None  # whether a view's hash was matched (None: no list)

    @property
    def uri(self) -> str:
        return self.read.entry.uri


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A file read and decoded, with its views' pixels (Yahoo's view first)."""

    image: Image
    views: tuple[View, ...]
    failed: ClassVar[bool] = False

    def keys(self) -> tuple["ViewOf", ...]:
        """Each view's key, in view order, with the view's hash; the ``image`` rides with the first only."""
        count = len(self.views)
        return tuple(ViewOf(self.image.uri, index, view.name, count, self.image if index == 0 else None, view.pdq,
                            view.counts, view.windows)
                     for index, view in enumerate(self.views))


@dataclasses.dataclass(frozen=True)
class Failure:
    """A manifest line or file that gets no score: its error kind (``model.errors``) and message;
    ``size`` and ``sha256`` once its bytes were read."""

    entry: Entry
    kind: str
    message: str
    size: int | None = None
    sha256: str | None = None
    failed: ClassVar[bool] = True

    @classmethod
    def of(cls, entry: Entry, error: Unscorable, read: Read | None = None) -> "Failure":
        if read is None and error.kind == "empty":  # read, and known: no bytes
            read = Read.of(entry, b"")
        return cls(entry, error.kind, error.message, read and read.size, read and read.sha256)

    @property
    def undecoded(self) -> bool:
        """Whether the file's bytes were read but not decoded (another loader may decode them)."""
        return bool(self.size)


@dataclasses.dataclass(frozen=True)
class ViewOf:
    """``RunInference``'s key of one view's pixels: which view of which file, and the view's
    PDQ hash; the file's ``image`` rides with its first view only (the others are matched to
    it by ``uri``)."""

    uri: str
    index: int
    name: str
    count: int  # views of the file
    image: Image | None
    pdq: Pdq | None = None  # the view's, as displayed (``model.pictures.yahoo_steps.View.pdq``)
    counts: OwnThresholds = AS_PICTURE  # how its score counts in its file's (``model.pictures.yahoo_steps.View.counts``)
    windows: RegionMap | None = None  # a region map's windows (``model.pictures.yahoo_steps.View.windows``)


@dataclasses.dataclass(frozen=True)
class ScoredView:
    """One view's NSFW probability, and the ``model_id`` of the model that computed it."""

    view: ViewOf
    score: float
    model: str
    window: tuple[int, int] | None = None  # a region map's: the (row, column) of its highest window

    @property
    def name(self) -> str:
        """What the row's ``view`` names: the view, or the region map's window that scored."""
        return self.view.name if self.window is None else self.view.windows.name(self.window)

    @property
    def counted(self) -> float:
        """What its score counts for in its file's (``model.decision.OwnThresholds``)."""
        return self.view.counts.counted(self.score)


@dataclasses.dataclass(frozen=True)
class Scored:
    """A file with every view scored, in view order (Yahoo's first)."""

    image: Image
    views: tuple[ScoredView, ...]

    @property
    def best(self) -> ScoredView:
        """The view whose score is the file's: the highest counted (``ScoredView.counted``; the
        earliest view's on a tie). Yahoo's view counts as it is, so a file never scores below it."""
        return max(self.views, key=lambda scored: scored.counted)  # max keeps the first of equals

    @classmethod
    def of_views(cls, views) -> "Scored":
        """The file of a group of its scored views (any order)."""
        views = tuple(sorted(views, key=lambda scored: scored.view.index))
        first = views[0].view
        assert len(views) == first.count, f"{first.uri}: {len(views)} of {first.count} views scored"
        return cls(first.image, views)
