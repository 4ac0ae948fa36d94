"""Beam steps of nsfw-scan, thin: what they read and write is ``storage/``'s. Importing the
package registers ``http://`` and ``https://`` with Beam's ``FileSystems`` (``storage/httpfs.py``),
so every process that runs one of these steps has them."""

from ..storage import httpfs  # noqa: F401
