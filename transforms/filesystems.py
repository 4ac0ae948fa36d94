"""Beam's filesystems (local, s3://, gs://, ...) configured in every process that touches a file.

Beam's ``FileSystems`` take their options (S3 endpoint, keys and region; the Google Cloud
project; Azure and HDFS settings) from one process-wide setting. A ``Pipeline`` sets it on the
launching machine, and Beam's SDK container sets it in the worker processes it starts; worker
processes started otherwise (Beam's external worker pool, ``python -m
apache_beam.runners.worker.worker_pool_main``, runs a bare ``SdkHarness``) never get it, and
Beam's S3 filesystem cannot make a client without it. So every step of this job that opens,
lists or writes files takes the launcher's storage options as a plain dict and sets them in its
``setup`` (:func:`use_storage_options`), before it touches anything.
"""

from __future__ import annotations

import argparse
import os
import threading

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import ReadAllFromParquet
from apache_beam.options.pipeline_options import (AzureOptions, GoogleCloudOptions, HadoopFileSystemOptions,
                                                  PipelineOptions, S3Options)

STORAGE_OPTION_CLASSES = (S3Options, GoogleCloudOptions, AzureOptions, HadoopFileSystemOptions)

_lock = threading.Lock()
_current: dict | None = None


def _option_names() -> set[str]:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for cls in STORAGE_OPTION_CLASSES:
        cls._add_argparse_args(parser)  # how each options class declares its flags
    return set(vars(parser.parse_args([])))


def storage_options(options: PipelineOptions) -> dict:
    """The options Beam's filesystems read, those given explicitly, as a plain (picklable) dict."""
    names = _option_names()
    return {k: v for k, v in options.get_all_options(drop_default=True).items() if k in names}


def use_storage_options(options: dict | None) -> None:
    """Set Beam's filesystem options in this process (once per distinct dict). An empty dict
    still matters: Beam's S3 filesystem then makes its client from the standard AWS
    environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL_S3``, ``~/.aws``, ...)."""
    global _current
    if options is None:
        return
    with _lock:
        _skip_google_credential_retries()
        if _current != options:
            FileSystems.set_options(PipelineOptions.from_dictionary(options))
            _current = dict(options)


def _skip_google_credential_retries() -> None:
    """Against a GCS emulator (``STORAGE_EMULATOR_HOST``) the client connects anonymously;
    Beam would first look for Google credentials, retrying the missing ones four times with
    exponential backoff (about 20 s per process) before it connects anonymously anyway. Beam
    caches that lookup's result per process (``auth._Credentials``): record "none" there.
    With a real GCS endpoint nothing changes; credentials are found at once where they exist."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # no gcp extra
        return
    cache = getattr(auth, "_Credentials", None)
    if cache is None or not hasattr(cache, "_credentials_init"):
        return  # another Beam version: it then pays the wait, nothing breaks
    with cache._credentials_lock:
        if not cache._credentials_init:
            cache._credentials, cache._credentials_init = None, True


class UseStorage(beam.DoFn):
    """Passes elements through; its ``setup`` sets the storage options for Beam's own IO steps
    fused with it (a runner sets up every step of a fused stage before the stage runs)."""

    def __init__(self, options: dict | None):
        self._options = options

    def setup(self):
        use_storage_options(self._options)

    def process(self, element):
        yield element


class ReadParquetFiles(beam.PTransform):
    """Beam's ``ReadAllFromParquet`` over a list of files, with the storage options set in the
    stages that list them and read them (a shuffle between the two splits them)."""

    def __init__(self, files: list[str], columns: list[str], storage: dict | None = None):
        super().__init__()
        self._files = files
        self._columns = columns
        self._storage = storage

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._files)
            | "StorageForListing" >> beam.ParDo(UseStorage(self._storage))
            | "ReadParquet" >> ReadAllFromParquet(columns=self._columns)
            | "StorageForReading" >> beam.ParDo(UseStorage(self._storage))
        )
