"""Where the shared test corpora are, and their reference scores."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("NSFW_SCAN_CORPUS", ROOT.parent / "shared" / "corpus"))
REAL = CORPUS / "real"
HOSTILE = CORPUS / "hostile"


def reference(name: str) -> dict[str, float]:
    return json.loads((CORPUS / "reference" / f"{name}.json").read_text())


def corpus_files(folder: Path) -> list[str]:
    """Every file under ``folder``, as paths relative to it, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
