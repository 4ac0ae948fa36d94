"""Shared fixtures: one scorer per test session, an isolated weights cache."""

from __future__ import annotations

import os

import pytest

from support.corpus import HAS_SHARED, SHARED, SHARED_FROM_ENV


def pytest_configure(config):
    if SHARED_FROM_ENV and not HAS_SHARED:
        raise pytest.UsageError(f"NSFW_SCAN_CORPUS points at {SHARED}, which holds no corpus (no reference/ folder)")


def pytest_report_header(config):
    return f"shared corpus: {SHARED if HAS_SHARED else 'not found; tests that need it are skipped'}"


@pytest.fixture(scope="session", autouse=True)
def weights_cache(tmp_path_factory):
    """Converted weights go to a fresh folder, so tests never depend on a user's cache."""
    path = tmp_path_factory.mktemp("weights-cache")
    os.environ["NSFW_SCAN_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def scorer(weights_cache):
    from nsfw_scan.model.engines import TensorFlowScorer

    return TensorFlowScorer()
