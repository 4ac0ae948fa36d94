"""Beam's ``FileSystems`` with ``http://`` and ``https://`` (read-only, through
``storage/http_reading.py`` and its address guard): every module of the job that opens, lists or
writes files takes ``FileSystems`` from here.

Importing this module registers :class:`HttpFileSystem` and :class:`HttpsFileSystem` (Beam
finds every ``FileSystem`` subclass by its ``scheme()``), so ``FileSystems.open("https://...")``
works in every process that imported it: the launcher and each worker that runs a step.
"""

from __future__ import annotations

import io
import urllib.parse

from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
    MatchResult,
)
from apache_beam.io.filesystems import FileSystems

from .http_reading import HttpSettings, open_url

__all__ = ["FileSystems", "HttpFileSystem", "HttpsFileSystem"]


class HttpFileSystem(FileSystem):
    """Read-only ``http://`` files for Beam: ``open``, ``exists``, ``size``; the guard and
    :class:`HttpSettings` defaults apply."""

    settings = HttpSettings()

    @classmethod
    def scheme(cls):
        return "http"

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        body = io.BufferedReader(open_url(path, self.settings, whole_answer_timeout=False))
        compression_type = FileSystem._get_compression_type(path, compression_type)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return body
        return CompressedFile(body, compression_type=compression_type)

    def exists(self, path):
        try:
            open_url(path, self.settings).close()
        except FileNotFoundError:
            return False
        return True

    def size(self, path):
        with open_url(path, self.settings) as body:
            if body.size is None:
                raise BeamIOError("no Content-Length", {path: None})
            return body.size

    def join(self, basepath, *paths):
        for path in paths:
            basepath = urllib.parse.urljoin(basepath.rstrip("/") + "/", path)
        return basepath

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        raise BeamIOError("http(s) cannot list files", {dir_or_prefix: None})

    def match(self, patterns, limits=None):
        # No globbing over http: each pattern is the one URL it names, if it exists.
        return [MatchResult(p, [FileMetadata(p, 0)] if self.exists(p) else []) for p in patterns]

    def _read_only(self, *args, **kwargs):
        raise BeamIOError("http(s) files are read-only", {})

    mkdirs = create = copy = rename = delete = _read_only

    def last_updated(self, path):
        raise BeamIOError("http(s) gives no modification time", {path: None})

    def checksum(self, path):
        raise BeamIOError("http(s) gives no checksum", {path: None})

    def metadata(self, path):
        return FileMetadata(path, self.size(path))


class HttpsFileSystem(HttpFileSystem):
    @classmethod
    def scheme(cls):
        return "https"
