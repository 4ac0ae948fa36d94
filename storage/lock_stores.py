"""Where the output folder's lock lives in each object store (``storage/lock.py``): one object,
read with its version, and written, replaced and deleted on condition of a version.

- S3: versions are ETags; ``If-None-Match: *`` creates, ``If-Match`` replaces and deletes.
- GCS: versions are generations (``ifGenerationMatch``), each write preceded by a read-compare.
- Any other Beam filesystem: read, compare, write (the version is the content).
"""

from __future__ import annotations

import logging

from .clients import gcs_client, s3_client
from .filesystems import FileSystems
from .options import StorageOptions

log = logging.getLogger(__name__)


class Store:
    """One object: ``read() -> (data, version) | None``; ``create`` / ``replace`` return the
    new version, or ``None`` when the condition failed; ``delete(version)``."""


class S3Store(Store):
    def __init__(self, path: str, storage: StorageOptions):
        self._client = s3_client(storage)
        self._bucket, _, self._key = path[len("s3://"):].partition("/")

    def _put(self, data: bytes, **condition):
        from botocore.exceptions import ClientError

        try:
            return self._client.put_object(Bucket=self._bucket, Key=self._key, Body=data, **condition)["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise

    def read(self):
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return response["Body"].read(), response["ETag"]

    def create(self, data):
        return self._put(data, IfNoneMatch="*")

    def replace(self, data, version):
        return self._put(data, IfMatch=version)

    def delete(self, version):
        from botocore.exceptions import ClientError

        try:
            self._client.delete_object(Bucket=self._bucket, Key=self._key, IfMatch=version)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                log.warning("%s: lock not removed: another run holds it now", self._key)
                return
            # a server without conditional deletes: compare, then delete
            current = self.read()
            if current and current[1] == version:
                self._client.delete_object(Bucket=self._bucket, Key=self._key)


class GcsStore(Store):
    """Versions are GCS generations (the content where a server reports none). Each write is
    conditional and also preceded by a read-compare, for servers that ignore the conditions
    (the GCS emulator): lock writes are rare, the extra read costs nothing."""

    def __init__(self, path: str, storage: StorageOptions):
        client = gcs_client(storage)
        bucket, _, key = path[len("gs://"):].partition("/")
        self._bucket, self._key = client.bucket(bucket), key

    def read(self):
        from google.api_core.exceptions import NotFound

        blob = self._bucket.get_blob(self._key)
        try:
            if blob is None:
                return None
            generation = blob.generation
            if generation is None:
                data = blob.download_as_bytes()
                return data, data
            return blob.download_as_bytes(if_generation_match=generation), generation
        except NotFound:
            return None

    def _unchanged(self, version) -> bool:
        current = self.read()
        return current is not None and current[1] == version

    def _upload(self, data, version):
        from google.api_core.exceptions import PreconditionFailed

        if version != 0 and not self._unchanged(version):  # also where the server ignores conditions
            return None
        blob = self._bucket.blob(self._key)
        try:
            blob.upload_from_string(data, content_type="application/json",
                                    if_generation_match=version if isinstance(version, int) else None)
        except PreconditionFailed:
            return None
        return blob.generation if blob.generation is not None else data

    def create(self, data):
        return self._upload(data, 0)

    def replace(self, data, version):
        return self._upload(data, version)

    def delete(self, version):
        from google.api_core.exceptions import GoogleAPICallError

        try:
            if isinstance(version, bytes):
                if self._unchanged(version):
                    self._bucket.blob(self._key).delete()
            else:
                self._bucket.blob(self._key).delete(if_generation_match=version)
        except GoogleAPICallError as exc:
            log.warning("%s: lock not removed: %s", self._key, exc)


class FileSystemsStore(Store):
    """Any other Beam filesystem: read, compare, write (the version is the content)."""

    def __init__(self, path: str, storage: StorageOptions):
        self._path = path

    def read(self):
        if not FileSystems.exists(self._path):
            return None
        with FileSystems.open(self._path) as f:
            data = f.read()
        return data, data

    def _write(self, data):
        with FileSystems.create(self._path) as f:
            f.write(data)
        return data

    def create(self, data):
        return None if FileSystems.exists(self._path) else self._write(data)

    def replace(self, data, version):
        current = self.read()
        return self._write(data) if current and current[1] == version else None

    def delete(self, version):
        current = self.read()
        if current and current[1] == version:
            FileSystems.delete([self._path])


_STORES = {"s3": S3Store, "gs": GcsStore}


def object_store(path: str, storage: StorageOptions) -> Store:
    """The lock object ``path`` (a URI) in its store."""
    return _STORES.get(path.split("://", 1)[0], FileSystemsStore)(path, storage)
