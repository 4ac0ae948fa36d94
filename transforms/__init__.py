"""Beam steps of nsfw-scan. Importing the package registers ``http://`` and ``https://`` with
Beam's ``FileSystems`` (``httpfs``), so every process that runs one of these steps has them."""

from . import httpfs  # noqa: F401
