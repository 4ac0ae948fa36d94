"""Shared fixtures: the shared corpora, one scorer per test session, an isolated weights cache."""

from __future__ import annotations

import os

import pytest

from corpus import CORPUS


def pytest_configure(config):
    if not (CORPUS / "reference").is_dir():
        raise pytest.UsageError(
            f"test corpus not found at {CORPUS}; the tests need the shared corpus beside the "
            f"project (../shared/corpus) or NSFW_SCAN_CORPUS pointing at it"
        )


@pytest.fixture(scope="session", autouse=True)
def weights_cache(tmp_path_factory):
    """Converted weights go to a fresh folder, so tests never depend on a user's cache."""
    path = tmp_path_factory.mktemp("weights-cache")
    os.environ["NSFW_SCAN_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def scorer(weights_cache):
    from nsfw_scan.model.scorer import Scorer

    return Scorer()
