"""Files of the output folder, on any Beam filesystem: listing them (failures named, never
"nothing there"), reading a Parquet file, and writing one so that it appears whole."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems


class OutputDirError(Exception):
    """The output folder cannot be used as it is; the message names it and says why."""


def match(pattern: str) -> list[str]:
    """Paths matching ``pattern`` (Beam's globs: ``*`` within a folder, ``**`` across). A pattern
    under a folder that does not exist matches nothing; any other failure (no such bucket,
    access denied, the store unreachable) is an :class:`OutputDirError`, never "nothing there"."""
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception as exc:
        causes = getattr(exc, "exception_details", None) or {pattern: exc}
        cause = next(iter(causes.values()))
        while getattr(cause, "exception_details", None):  # Beam nests its errors
            cause = next(iter(cause.exception_details.values()))
        raise OutputDirError(f"cannot list {pattern}: {type(cause).__name__}: {cause}"[:500]) from None


def read_table(path: str, columns=None) -> pa.Table:
    with FileSystems.open(path) as f:
        return pq.read_table(io.BytesIO(f.read()), columns=columns)


def write_table(path: str, table: pa.Table) -> None:
    """``path`` holds ``table`` as Parquet, appearing with all of it or not at all: a local file
    is written under another name and renamed, an object in a bucket is created whole."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    if "://" in path:
        with FileSystems.create(path) as f:
            f.write(buffer.getvalue())
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
