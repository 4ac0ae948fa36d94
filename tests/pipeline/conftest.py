"""Fixtures of the pipeline tests."""

import io

import numpy as np
import pytest
from PIL import Image

from support.images import png


@pytest.fixture
def uploads(tmp_path):
    """Images of different greys (so different fake scores) and the usual broken uploads."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    good = [png(folder / f"grey{v}.png", (v, v, v)) for v in (0, 60, 120, 180, 240)]
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image\n")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:2000])
    broken = {str(folder / "empty.jpg"): "empty", str(folder / "text.jpg"): "undecodable",
              str(folder / "truncated.jpg"): "truncated", str(folder / "gone.jpg"): "not_found",
              str(folder): "not_a_file"}
    return good, broken
