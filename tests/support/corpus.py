"""Where the test corpora are, and their reference scores.

``tests/corpus/`` is committed with the project: a few photos and a selection of Pillow's
hostile test files with their reference scores (see its README), so that the suite runs on a
fresh clone. The shared corpus (``../shared/corpus``, or ``NSFW_SCAN_CORPUS``) holds all of
them; tests marked ``needs_shared`` run only where it exists (as in CI) and skip elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPACT = ROOT / "tests" / "corpus"
REAL = COMPACT / "real"
HOSTILE = COMPACT / "hostile"

SHARED_FROM_ENV = "NSFW_SCAN_CORPUS" in os.environ
SHARED = Path(os.environ.get("NSFW_SCAN_CORPUS", ROOT.parent / "shared" / "corpus"))
SHARED_REAL = SHARED / "real"
SHARED_HOSTILE = SHARED / "hostile"
HAS_SHARED = (SHARED / "reference").is_dir()

needs_shared = pytest.mark.skipif(
    not HAS_SHARED, reason=f"the shared corpus is not at {SHARED} (set NSFW_SCAN_CORPUS to run these)"
)


def reference(name: str, corpus: Path = COMPACT) -> dict[str, float]:
    """Reference scores of ``corpus/<name>/`` (``real`` or ``hostile``), keyed by relative path."""
    return json.loads((corpus / "reference" / f"{name}.json").read_text())


def corpus_files(folder: Path) -> list[str]:
    """Every file under ``folder``, as paths relative to it, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def heif_files(folder: Path) -> set[str]:
    """Files under ``folder`` that open as HEIF: Yahoo's loader (plain Pillow) could not read
    them, so the reference has no score for them; nsfw-scan decodes them through pi-heif."""
    from nsfw_scan.model.errors import Unscorable
    from nsfw_scan.model.pictures.preprocess import image_format

    found = set()
    for name in corpus_files(folder):
        try:
            if image_format((folder / name).read_bytes()) == "HEIF":
                found.add(name)
        except Unscorable:
            pass
    return found
