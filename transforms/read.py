"""Reading one image's bytes from any filesystem Beam knows (local, gs://, s3://, hdfs://, ...)."""

from __future__ import annotations

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from ..model.preprocess import ImageError


def read_bytes(uri: str, max_bytes: int) -> bytes:
    """The file's bytes, as stored (never decompressed); failures are :class:`ImageError`."""
    try:
        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageError("not_found", "no such file") from None
    except IsADirectoryError:
        raise ImageError("not_a_file", "the path is a directory") from None
    except ValueError as exc:
        if "Unable to get filesystem" not in str(exc):
            raise ImageError("read_error", f"{type(exc).__name__}: {exc}"[:300]) from None
        scheme = uri.split("://", 1)[0] if "://" in uri else uri
        raise ImageError(
            "unsupported_scheme",
            f"no Beam filesystem for {scheme!r}; install its extra, e.g. pip install 'nsfw-scan[gcp]' or 'nsfw-scan[aws]'",
        ) from None
    except Exception as exc:  # each remote filesystem raises its own types
        try:
            exists = FileSystems.exists(uri)
        except Exception:
            exists = True
        if not exists:
            raise ImageError("not_found", "no such file") from None
        raise ImageError("read_error", f"{type(exc).__name__}: {exc}"[:300]) from None
    if len(data) > max_bytes:
        raise ImageError("too_large", f"the file is larger than the limit of {max_bytes} bytes")
    if not data:
        raise ImageError("empty", "the file has no bytes")
    return data
