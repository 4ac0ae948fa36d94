"""Loaders: exact steps, shapes, and every failure classified."""

import io

import numpy as np
import pytest
from PIL import Image

from nsfw_scan.model.errors import Unscorable
from nsfw_scan.model.pictures.preprocess import load_image
from support.corpus import HOSTILE, REAL


def jpeg_bytes(size=(640, 480), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_yahoo_loader_follows_yahoo_steps():
    data = (REAL / "chelsea.png").read_bytes()
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    rgb = np.asarray(Image.open(buffer), dtype=np.float32)[16:240, 16:240]
    expected = rgb[:, :, ::-1] - np.array([104, 117, 123], np.float32)

    result = load_image(data)
    assert result.array.dtype == np.float32 and result.array.shape == (224, 224, 3)
    assert result.array.flags.c_contiguous
    np.testing.assert_array_equal(result.array, expected)
    assert (result.width, result.height) == Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("loader", ["yahoo", "tensorflow"])
@pytest.mark.parametrize(
    "data,kind",
    [
        (b"", "empty"),
        (b"this is a text file, not an image\n" * 10, "undecodable"),
        (jpeg_bytes()[:2000], "truncated"),
    ],
    ids=["empty", "text", "truncated-jpeg"],
)
def test_failures_are_classified(loader, data, kind):
    if loader == "tensorflow" and kind == "truncated":
        kind = "undecodable"  # TensorFlow's decoder does not tell truncation apart
    with pytest.raises(Unscorable) as caught:
        load_image(data, loader)
    assert caught.value.kind == kind
    assert str(caught.value).startswith(f"{kind}: ")


def test_pixel_limit_stops_decoding_before_it_starts():
    with pytest.raises(Unscorable, match="decompression_bomb: 640x480 = 307200 pixels exceeds the limit of 100000"):
        load_image(jpeg_bytes(), max_pixels=100_000)
    # Pillow's own bomb from the hostile corpus: header claims far more than the default limit.
    with pytest.raises(Unscorable) as caught:
        load_image((HOSTILE / "decompression_bomb.gif").read_bytes())
    assert caught.value.kind == "decompression_bomb"


def test_animated_images_score_their_first_frame():
    frames = [Image.new("RGB", (300, 300), color) for color in ((250, 20, 20), (20, 20, 250))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    first = buffer.getvalue()
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF")
    np.testing.assert_array_equal(load_image(first).array, load_image(buffer.getvalue()).array)


def test_unknown_loader_is_rejected():
    with pytest.raises(ValueError, match="unknown loader 'fastest'"):
        load_image(jpeg_bytes(), "fastest")
