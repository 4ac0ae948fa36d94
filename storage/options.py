"""Beam's filesystem options, owned once: taken from the flags, carried to every worker, applied.

Beam's ``FileSystems`` (local, s3://, gs://, ...) take their options (S3 endpoint, keys and
region; the Google Cloud project; Azure and HDFS settings) from one process-wide setting.
``run`` passes every flag it does not know to Beam, so they are among its Beam flags
(``--s3_endpoint_url``, ``--s3_access_key_id``, ``--s3_secret_access_key``,
``--s3_region_name``, ``--s3_verify``, ``--project``, ...); ``score`` and ``report`` accept them
explicitly (:func:`add_storage_flags`). Without them, the standard AWS / Google environment
applies.

A ``Pipeline`` sets them on the launching machine, and Beam's SDK container sets them in the
worker processes it starts; worker processes started otherwise (Beam's external worker pool,
``python -m apache_beam.runners.worker.worker_pool_main``, runs a bare ``SdkHarness``) never
get them, and Beam's S3 filesystem cannot make a client without them. So every step of the job
that opens, lists or writes files carries the pipeline's :class:`StorageOptions` (a frozen,
picklable value: it travels with the pipeline) and calls :meth:`StorageOptions.apply` in its
``setup``, before it touches anything (``transforms/storage_step.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import threading

from apache_beam.options.pipeline_options import (
    AzureOptions,
    GoogleCloudOptions,
    HadoopFileSystemOptions,
    PipelineOptions,
    S3Options,
)

from .compat import add_option_flags, record_no_google_credentials
from .filesystems import FileSystems

# The options classes whose options Beam's filesystems read
OPTION_CLASSES = (S3Options, GoogleCloudOptions, AzureOptions, HadoopFileSystemOptions)
# Those whose every flag ``score`` and ``report`` take (of GoogleCloudOptions, two: the others
# are about launching Dataflow jobs)
_FLAG_CLASSES = (S3Options, AzureOptions, HadoopFileSystemOptions)

_lock = threading.Lock()
_applied: "StorageOptions | None" = None


@dataclasses.dataclass(frozen=True)
class StorageOptions:
    """The filesystem options given explicitly (name -> value, sorted by name). An empty value
    still matters: Beam's S3 filesystem then makes its client from the standard AWS
    environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL_S3``, ``~/.aws``, ...)."""

    given: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, options: dict) -> "StorageOptions":
        return cls(tuple(sorted(options.items())))

    @classmethod
    def from_pipeline_options(cls, options: PipelineOptions) -> "StorageOptions":
        """Those of a pipeline's options that Beam's filesystems read, the ones given explicitly."""
        names = _option_names()
        return cls.of({k: v for k, v in options.get_all_options(drop_default=True).items() if k in names})

    @classmethod
    def from_beam_args(cls, beam_args) -> "StorageOptions":
        """Those among ``run``'s Beam flags."""
        return cls.from_pipeline_options(PipelineOptions(list(beam_args)))

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> "StorageOptions":
        """The flags of :func:`add_storage_flags` that ``args`` gives other than their defaults."""
        return cls.of({k: getattr(args, k) for k, default in _flag_defaults().items()
                       if getattr(args, k, default) != default})

    def as_dict(self) -> dict:
        return dict(self.given)

    def pipeline_options(self) -> PipelineOptions:
        return PipelineOptions.from_dictionary(self.as_dict())

    def apply(self) -> "StorageOptions":
        """Set these options for Beam's filesystems in this process (once per distinct value);
        returns them."""
        global _applied
        with _lock:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                _skip_google_credential_retries()
            if _applied != self:
                FileSystems.set_options(self.pipeline_options())
                _applied = self
        return self


def applied() -> StorageOptions:
    """The options last applied in this process (none: the environment's defaults)."""
    return _applied or StorageOptions()


def _skip_google_credential_retries() -> None:
    """Against a GCS emulator (``STORAGE_EMULATOR_HOST``) the client connects anonymously;
    Beam would first look for Google credentials, retrying the missing ones four times with
    exponential backoff (about 20 s per process) before it connects anonymously anyway. Beam
    caches that lookup's result per process: record "none" there. With a real GCS endpoint
    nothing changes; credentials are found at once where they exist. (In another Beam
    version that keeps the cache elsewhere, it then pays the wait; nothing breaks.)"""
    record_no_google_credentials()


def _google_flags(parser) -> None:
    # the two GoogleCloudOptions that matter for reading and writing gs://
    parser.add_argument("--project", default=None, help="Google Cloud project (gs:// requests are billed to it)")
    parser.add_argument("--impersonate_service_account", default=None,
                        help="service account (or comma-separated delegation chain) to act as for gs://")


def add_storage_flags(parser: argparse.ArgumentParser) -> None:
    """Beam's storage flags, for the commands that do not hand their other flags to Beam."""
    group = parser.add_argument_group("storage (Beam's filesystem options, as for nsfw-scan run)")
    for cls in _FLAG_CLASSES:
        add_option_flags(cls, group)
    _google_flags(group)


def _flag_defaults() -> dict:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_storage_flags(parser)
    return vars(parser.parse_args([]))


@functools.cache
def _option_names() -> frozenset[str]:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for cls in OPTION_CLASSES:
        add_option_flags(cls, parser)
    return frozenset(vars(parser.parse_args([])))
