"""PDQ hashes agree with reference hashes made by Meta's implementation (``tests/corpus/reference/
pdq.json``, see ``make_pdq.py`` there): bit for bit on the full pixels, and within a few bits
from the resize each loader makes (the hash the rows carry)."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from nsfw_scan.model.pictures import pdq
from nsfw_scan.model.pictures.preprocess import load_image
from support.corpus import COMPACT
from support.images import encoded, pdq_cases, rgb

REFERENCE = json.loads((COMPACT / "reference" / "pdq.json").read_text())
CASES = pdq_cases()
# Meta's HMA calls two hashes a match at a distance of 31 or less
MATCH = 31


def displayed(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


def test_every_case_has_a_reference():
    assert sorted(CASES) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_the_full_pixels_hash_as_metas_implementation(name):
    hashed = pdq.hash_of(displayed(CASES[name]))
    assert pdq.distance(hashed.hex, REFERENCE[name]["pdq"]) <= 2, name  # float rounding at the median only
    assert hashed.quality == REFERENCE[name]["quality"]


@pytest.mark.parametrize("loader", ["yahoo", "fast"])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_rows_hash_within_a_few_bits_of_metas(name, loader):
    view = load_image(CASES[name], loader).views[0]
    assert pdq.distance(view.pdq.hex, REFERENCE[name]["pdq"]) <= 10, (name, loader)
    assert abs(view.pdq.quality - REFERENCE[name]["quality"]) <= 5


def test_the_hash_is_of_the_picture_as_displayed():
    upright = pdq.hash_of(displayed(CASES["grace_hopper-sideways.jpg"]))
    stored = pdq.hash_of(np.asarray(Image.open(io.BytesIO(CASES["grace_hopper-sideways.jpg"])).convert("RGB")))
    row = load_image(CASES["grace_hopper-sideways.jpg"]).views[0].pdq
    assert pdq.distance(row.hex, upright.hex) <= 10
    assert pdq.distance(row.hex, stored.hex) > MATCH


def test_copies_stay_near_and_other_pictures_far():
    original = load_image(CASES["chelsea.png"]).views[0].pdq.hex
    picture = Image.open(io.BytesIO(CASES["chelsea.png"])).convert("RGB")
    copies = [encoded(picture.resize((300, 200), Image.Resampling.BICUBIC), "JPEG", quality=60),
              encoded(picture.resize((1200, 800), Image.Resampling.LANCZOS), "WEBP", quality=70)]
    for copy in copies:
        assert pdq.distance(load_image(copy).views[0].pdq.hex, original) <= MATCH
    for other in ("coffee.png", "astronaut.png", "coins.png"):
        assert pdq.distance(load_image(encoded(rgb(other))).views[0].pdq.hex, original) > 2 * MATCH


def test_the_hex_form_is_metas_bit_order():
    # bit k of PDQ's 256 is coefficient k = 16 i + j; Meta's hex prints bit 255 first
    bits = np.zeros(pdq.BITS, dtype=bool)
    bits[0] = True
    assert pdq._hex(bits) == "0" * 63 + "1"
    bits[:] = False
    bits[255] = True
    assert pdq._hex(bits) == "8" + "0" * 63


def test_a_flat_picture_has_no_quality():
    flat = pdq.hash_of(np.full((300, 200, 3), 128, dtype=np.uint8))
    assert flat.quality == 0
    assert len(flat.hex) == pdq.HEX_DIGITS


BOUNDED = """
import io, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from PIL import Image
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.views import ViewPolicy

for width, height, kind, loader in [(1_000_000, 1, "PNG", "yahoo"), (1, 1_000_000, "PNG", "fast"),
                                    (60_000, 600, "JPEG", "fast"), (60_000, 600, "JPEG", "yahoo")]:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, kind)
    image = load_image(buffer.getvalue(), loader, policy=ViewPolicy("all"))
    print(width, height, kind, len(buffer.getvalue()), image.views[0].pdq.hex)
"""


def test_hashing_a_picture_of_any_shape_takes_memory_bounded_by_its_pixels():
    """A 3 KB PNG of 1,000,000 x 1 pixels asked for 7.3 GiB (the filter's matrices grew with the
    square of the long side): under a 2 GiB address-space cap, every shape hashes."""
    out = subprocess.run([sys.executable, "-c", BOUNDED], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(out.stdout.splitlines()) == 4


def test_the_filter_of_a_long_axis_is_metas_box_filter():
    """The linear-memory filter is Meta's two box passes and decimation: checked against the
    passes applied to unit vectors, for lengths with odd and even windows and short ones."""
    for length in (64, 127, 300, 1001, 2500):
        window = (length + 2 * 64 - 1) // (2 * 64)
        half = (window + 2) // 2
        before, after = window - half, half - 1
        first = np.maximum(np.arange(length) - before, 0)
        last = np.minimum(np.arange(length) + after, length - 1) + 1

        def box(x):  # Meta's box1DFloat along axis 0: the mean over the window inside the axis
            summed = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
            return (summed[last] - summed[first]) / (last - first)[:, None]

        centres = ((np.arange(64) + 0.5) * length / 64).astype(np.int64)
        expected = box(box(np.eye(length)))[centres]
        assert np.allclose(pdq._downsampling(length), expected, atol=1e-6), length


def test_a_long_axis_hashes_as_metas_on_the_full_pixels():
    """Axes longer than the estimator's bound are estimated as that long: the rows' hash stays
    within a few bits of Meta's on the full pixels (measured 0-2 bits on 20 shapes up to 30,000)."""
    picture = Image.open(io.BytesIO(CASES["chelsea.png"])).convert("RGB")
    for size in ((12_000, 900), (900, 12_000)):
        wide = picture.resize(size, Image.Resampling.BILINEAR)
        exact = pdq.hash_of(np.asarray(wide))
        assert pdq.distance(load_image(encoded(wide)).views[0].pdq.hex, exact.hex) <= 10, size
