"""Which views of a file are scored, and their names as rows give them (``view``).

A view is what a viewer may see of an upload: Yahoo's (the first frame, stored orientation,
``yahoo``), the other views of the whole picture (frames, EXIF rotation, 8-bit from 16-bit) and a
still's regions. Pure Python, so that readers of result rows need no image library.
"""

from __future__ import annotations

import dataclasses

from ..decision import OwnThresholds

YAHOO_VIEW = "yahoo"
WHOLE_VIEWS = "whole"  # every view of the whole picture, no regions
VIEW_MODES = ("all", WHOLE_VIEWS, YAHOO_VIEW)
REGION_PREFIX = "region "
REGIONS_VIEW = "regions"  # the view of a still's region map; a row names the window that scored


@dataclasses.dataclass(frozen=True)
class ViewPolicy:
    """Which views of a file are scored. ``views``: ``all`` (Yahoo's view, every other one a
    viewer sees, and a still's regions), ``whole`` (the same without regions) or ``yahoo``
    (Yahoo's only). ``max_frames``: frames of an animation scored
    at most, sampled evenly over its duration, first and last included (counting Yahoo's first
    frame). ``max_frame_pixels``: pixels decoded per file for frames; each frame costs its
    canvas, and at least 256x256, so that tiny frames are bounded in number too."""

    views: str = "all"
    max_frames: int = 22
    max_frame_pixels: int = 200_000_000
    # videos (``model.pictures.video``): frames sampled at most (one per second up to this many), and
    # pixels decoded per file (each frame counting at least 128x128)
    video_max_frames: int = 301
    video_max_pixels: int = 20_000_000_000
    # the thresholds of their own that a still's regions, and a video's frames after the first,
    # are decided at (``model.decision``; Yahoo's view and the other whole views count as they
    # are). The defaults are fitted by benchmarks/review_load.py.
    region_thresholds: OwnThresholds = OwnThresholds(0.25, 0.9)
    clip_thresholds: OwnThresholds = OwnThresholds(0.7, 0.8)
    # stills whose shorter side has at least this many pixels also get their region map as a
    # view (``region_map_view``, with ``views="all"``)
    region_min_side: int = 64

    @property
    def regions(self) -> bool:
        return self.views == "all"

    def gets_regions(self, width: int, height: int, frames: int = 1) -> bool:
        """Whether a file of this size and number of frames gets its regions as views: a still of
        at least ``region_min_side`` pixels a side (an animation's frames are its views)."""
        return self.regions and frames == 1 and min(width, height) >= self.region_min_side


YAHOO_ONLY = ViewPolicy(YAHOO_VIEW)
