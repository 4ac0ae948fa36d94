"""Paths as the launching machine gives them and shows them."""

from __future__ import annotations

import os


def absolute(path: str) -> str:
    """Local paths made absolute: workers in other processes run in other folders."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def shown(path: str) -> str:
    """A path as the job prints it and writes it into summaries and reports: local paths
    relative to the working folder where they lie under it (so shared logs carry no home
    folders or machine layout), URIs and other paths as they are."""
    if "://" in path or not os.path.isabs(path):
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
