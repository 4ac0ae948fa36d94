"""Fuzzing the load-and-preprocess step: any bytes give an array of the right shape or a
classified error — never another exception, a crash or a hang.

The examples are derandomized, so CI checks the same 10,000 inputs every time; set
``NSFW_SCAN_FUZZ_RANDOM=1`` to fuzz with fresh random inputs when hunting new cases."""

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nsfw_scan.model.errors import Unscorable
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.views import ViewPolicy
from support.corpus import HAS_SHARED, HOSTILE, REAL, SHARED_HOSTILE, SHARED_REAL, corpus_files, needs_shared

FIXED = not os.environ.get("NSFW_SCAN_FUZZ_RANDOM")
KINDS = {"empty", "undecodable", "truncated", "decompression_bomb", "too_large", "unsupported_format", "no_video"}


def small_files(*folders) -> list[bytes]:
    """Small seeds of many formats, so each mutation is cheap to decode."""
    paths = [folder / f for folder in folders for f in corpus_files(folder)]
    return sorted((p.read_bytes() for p in paths if p.stat().st_size <= 16_384), key=len)


SEEDS = small_files(HOSTILE, REAL)  # the committed corpus: the same seeds on every machine
# The whole shared corpus where it exists (about 800 seeds).
SHARED_SEEDS = small_files(SHARED_HOSTILE, SHARED_REAL) if HAS_SHARED else SEEDS


@st.composite
def mutated(draw, seeds=SEEDS):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "splice", "header", "insert"]))
        if not data:
            break
        if op == "flip":
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data) - 1)):]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(data)))
            data[cut:] = other[draw(st.integers(0, len(other))):]
        elif op == "header":
            n = draw(st.integers(1, min(64, len(data))))
            data[:n] = draw(st.binary(min_size=n, max_size=n))
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


ALL_VIEWS = ViewPolicy()


def _fax_tiff(data: bytes) -> bool:
    """Whether ``data`` opens as a TIFF with CCITT fax compression."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format == "TIFF" and image.info.get("compression") in ("group3", "group4", "tiff_ccitt")
    except Exception:
        return False


def check(data: bytes):
    """Yahoo's view, and every other view the job scores (``views: all``): the same outcome for
    Yahoo's view either way, and each view an array of the right shape."""
    try:
        result = load_image(data, max_pixels=16_000_000)
    except Unscorable as exc:
        assert exc.kind in KINDS, exc
        with pytest.raises(Unscorable) as again:
            load_image(data, max_pixels=16_000_000, policy=ALL_VIEWS)
        assert again.value.kind == exc.kind
        return
    assert result.array.shape == (224, 224, 3) and result.array.dtype == np.float32
    assert np.isfinite(result.array).all()
    assert result.width > 0 and result.height > 0
    views = load_image(data, max_pixels=16_000_000, policy=ALL_VIEWS)
    assert 1 <= len(views.views) <= ALL_VIEWS.max_frames and views.frames >= 1
    # Yahoo's view is the same either way, where decoding is repeatable at all: libtiff leaves
    # parts of corrupt fax-coded (CCITT) strips undefined, so those pixels depend on what the
    # memory held, from one decode to the next
    if not _fax_tiff(data) and np.array_equal(load_image(data, max_pixels=16_000_000).array, result.array):
        np.testing.assert_array_equal(views.array, result.array)
    for view in views.views:
        # a view of one window, or a region map (``model.pictures.preprocess.region_map_view``)
        shape = (224, 224) if view.windows is None else tuple(side - 64 for side in view.windows.resized[::-1])
        assert view.array.shape == (*shape, 3) and view.array.dtype == np.float32 and np.isfinite(view.array).all()


@settings(max_examples=300, deadline=None, database=None, derandomize=FIXED, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_images_quick(data):
    check(data)


@pytest.mark.slow
@needs_shared
@settings(max_examples=10_000, deadline=None, database=None, derandomize=FIXED,
          suppress_health_check=list(HealthCheck))
@given(mutated(SHARED_SEEDS))
def test_mutated_images_10k(data):
    check(data)
