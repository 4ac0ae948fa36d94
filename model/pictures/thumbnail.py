"""Small pictures of what a row's ``view`` shows, for the people who review it.

:func:`thumbnails` makes, from an upload's bytes and the view its row names, a JPEG of that view
as a viewer sees it, at most ``THUMB_SIDE`` pixels a side, re-encoded here (never the upload's
own bytes):

- ``yahoo`` and the other whole views (``exif-rotated``, ``8-bit from 16-bit``, ...): the first
  frame as displayed (EXIF orientation applied, deep images scaled to 8 bits);
- ``frame 17``: that frame of an animation, as displayed; ``frame at 9.6 s``: the clip's picture
  at that time (``model.pictures.video.frame_at``);
- ``region l,t,r,b``: that box of the picture as the region map saw it (as stored), and a
  second JPEG of the whole picture with the box outlined.

Files are opened as the job opens them (``model.pictures.preprocess.open_image``: the same formats, the
same pixel limit); a file the job found truncated is shown as far as it decodes. Failures are
:class:`model.errors.Unscorable`, whose message says why.
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import warnings

from PIL import Image, ImageDraw, ImageFile, ImageOps

from ..errors import Unscorable, describe
from .preprocess import displayed_rgb, open_image
from .signatures import is_video, signature_of
from .views import REGION_PREFIX

THUMB_SIDE = 256
JPEG_QUALITY = 85
OUTLINE = (255, 0, 200)  # the region's box on the whole picture: a colour photos rarely have
_FRAME = re.compile(r"frame (\d+)$")
_CLIP_FRAME = re.compile(r"frame at (\d+(?:\.\d+)?) s$")
_TRUNCATED = threading.Lock()
_REGION = re.compile(re.escape(REGION_PREFIX) + r"(\d+),(\d+),(\d+),(\d+)$")


@dataclasses.dataclass(frozen=True)
class Thumbnails:
    view: bytes  # JPEG of the view
    whole: bytes | None = None  # JPEG of the whole picture with the view's region outlined


def thumbnails(data: bytes, view: str | None, max_pixels: int, video_max_pixels: int) -> Thumbnails:
    """The view named ``view`` (a row's ``view``; None: Yahoo's) of the upload ``data``, as JPEG."""
    view = view or ""
    what = signature_of(data[:64])
    if what is not None and is_video(what):
        from .video import frame_at

        clip = _CLIP_FRAME.match(view)
        return Thumbnails(_jpeg(frame_at(data, float(clip.group(1)) if clip else 0.0, max_pixels, video_max_pixels)))
    try:
        return _still(data, view, max_pixels)
    except Exception as exc:
        if not (isinstance(exc, EOFError) or "truncated" in str(exc).lower()):
            raise _failure(exc) from None
    # a file cut short: shown as far as it decodes (Pillow's switch for that is one for the
    # whole process, so it is on only here, one file at a time)
    with _TRUNCATED:
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return _still(data, view, max_pixels)
        except Exception as exc:
            raise _failure(exc) from None
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = False


def _still(data: bytes, view: str, max_pixels: int) -> Thumbnails:
    image = open_image(data, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        region, frame = _REGION.match(view), _FRAME.match(view)
        if region:
            return _region(image, tuple(int(v) for v in region.groups()))
        if frame:
            image.seek(min(int(frame.group(1)), getattr(image, "n_frames", 1) - 1))
        return Thumbnails(_jpeg(displayed_rgb(ImageOps.exif_transpose(image))))


def _failure(exc: Exception) -> Unscorable:
    if isinstance(exc, Unscorable):
        return exc
    if isinstance(exc, MemoryError):
        return Unscorable("too_large", "not enough memory to decode the image")
    return Unscorable("undecodable", describe(exc))  # Pillow's many failures


def _region(image: Image.Image, box: tuple[int, int, int, int]) -> Thumbnails:
    picture = displayed_rgb(image)  # as stored: the region map's coordinates
    whole = picture.copy()
    whole.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    scale = whole.width / picture.width
    left, top, right, bottom = (round(v * scale) for v in box)
    width = max(2, round(min(whole.size) / 64))
    ImageDraw.Draw(whole).rectangle((left, top, right - 1, bottom - 1), outline=OUTLINE, width=width)
    return Thumbnails(_jpeg(picture.crop(box)), _jpeg(whole))


def _jpeg(picture: Image.Image) -> bytes:
    picture = picture.convert("RGB")
    picture.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
