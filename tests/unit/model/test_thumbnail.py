"""Thumbnails of the view a row names (model/pictures/thumbnail.py): the frame, the time, the region, the
picture as displayed; re-encoded small; broken files shown as far as they decode, or refused
with the reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nsfw_scan.model.errors import Unscorable
from nsfw_scan.model.pictures.preprocess import DEFAULT_MAX_PIXELS
from nsfw_scan.model.pictures.thumbnail import OUTLINE, THUMB_SIDE, thumbnails
from support.corpus import HOSTILE, REAL
from support.images import encoded, gif, sideways

COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 30)]


def shown(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and max(image.size) <= THUMB_SIDE
    return image.convert("RGB")


def colour(image: Image.Image) -> tuple:
    return tuple(np.asarray(image).reshape(-1, 3).mean(axis=0).round())


def near(a, b, tolerance=25) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def test_the_named_frame_of_an_animation():
    data = gif([Image.new("RGB", (64, 48), c) for c in COLOURS])
    for index, expected in enumerate(COLOURS):
        assert near(colour(shown(thumbnails(data, f"frame {index}", DEFAULT_MAX_PIXELS, 10**9).view)), expected)
    assert near(colour(shown(thumbnails(data, "yahoo", DEFAULT_MAX_PIXELS, 10**9).view)), COLOURS[0])


def test_the_clip_s_picture_at_the_named_time():
    pytest.importorskip("av")
    from support.clips import clip

    data = clip([Image.new("RGB", (160, 120), c) for c in COLOURS], fps=5)
    for second, expected in enumerate(COLOURS):
        made = thumbnails(data, f"frame at {second}.0 s", DEFAULT_MAX_PIXELS, 10**9)
        assert near(colour(shown(made.view)), expected, 40) and made.whole is None


def test_a_picture_as_displayed_and_large_ones_made_small():
    photo = Image.open(REAL / "coffee.png").convert("RGB")  # 600 x 400
    upright = shown(thumbnails(sideways(photo), "exif-rotated", DEFAULT_MAX_PIXELS, 10**9).view)
    assert upright.size == (256, 171)
    assert shown(thumbnails(encoded(photo), "yahoo", DEFAULT_MAX_PIXELS, 10**9).view).size == (256, 171)


def test_a_region_and_the_whole_picture_with_it_outlined():
    picture = Image.new("RGB", (800, 600), COLOURS[2])
    picture.paste(Image.new("RGB", (200, 200), COLOURS[0]), (400, 200))
    made = thumbnails(encoded(picture), "region 400,200,600,400", DEFAULT_MAX_PIXELS, 10**9)
    assert near(colour(shown(made.view)), COLOURS[0])
    whole = shown(made.whole)
    assert whole.size == (256, 192)
    assert near(whole.getpixel((128, 96)), OUTLINE, 60)  # the box's left edge, at 400 * 256 / 800
    assert near(whole.getpixel((40, 40)), COLOURS[2])


def test_a_truncated_file_is_shown_as_far_as_it_decodes_and_garbage_says_why():
    assert shown(thumbnails((HOSTILE / "truncated_end_chunk.png").read_bytes(), None, DEFAULT_MAX_PIXELS, 10**9).view)
    with pytest.raises(Unscorable, match="undecodable"):
        thumbnails(b"not a picture at all", "yahoo", DEFAULT_MAX_PIXELS, 10**9)
    with pytest.raises(Unscorable, match="decompression_bomb"):
        thumbnails(encoded(Image.new("RGB", (300, 300))), "yahoo", 300 * 299, 10**9)
