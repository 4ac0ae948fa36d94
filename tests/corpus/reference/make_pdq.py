"""Writes ``pdq.json``: reference PDQ hashes of ``support.images.pdq_cases()``, made by Meta's
own implementation (``pdq/cpp`` of facebook/ThreatExchange, through the ``pdqhash`` bindings)
on each file's pixels as displayed (Pillow's RGB, EXIF orientation applied).

Not part of the package or the tests: ``pdqhash`` is built from source (it has no wheels).
From the repository's root, with a C++ compiler:

    python -m venv /tmp/pdq && /tmp/pdq/bin/pip install pdqhash==0.2.8 pytest -e .
    /tmp/pdq/bin/python tests/corpus/reference/make_pdq.py
"""

import io
import json
import sys
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from support.images import pdq_cases  # noqa: E402


def reference(data: bytes) -> dict:
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    bits, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(image)))
    return {"pdq": np.packbits(bits.astype(np.uint8)).tobytes().hex(), "quality": int(quality)}


if __name__ == "__main__":
    hashes = {name: reference(data) for name, data in pdq_cases().items()}
    (HERE / "pdq.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print(f"{len(hashes)} reference hashes written to {HERE.name}/pdq.json")
