"""Where files live, on the launching machine: Beam's filesystem options set before any path is
touched, and local paths made absolute.

``run``, ``score`` and ``report`` read and write through Beam's ``FileSystems`` (local, gs://,
s3://, ...), configured by Beam's own flags (``--s3_endpoint_url``, ``--s3_access_key_id``,
``--s3_secret_access_key``, ``--s3_region_name``, ``--s3_verify``, ``--project``, ...) and the
standard AWS / Google environment. ``run`` passes every flag it does not know to Beam;
``score`` and ``report`` accept the storage flags explicitly. The same options go to the
workers with the steps that need them (``transforms/filesystems.py``).
"""

from __future__ import annotations

import argparse
import os

from apache_beam.options.pipeline_options import AzureOptions, HadoopFileSystemOptions, PipelineOptions, S3Options

from ..transforms.filesystems import storage_options, use_storage_options

_CLASSES = (S3Options, AzureOptions, HadoopFileSystemOptions)


def _google_flags(parser) -> None:
    # the two GoogleCloudOptions that matter for reading and writing gs:// (Beam's other
    # GoogleCloudOptions are about launching Dataflow jobs)
    parser.add_argument("--project", default=None, help="Google Cloud project (gs:// requests are billed to it)")
    parser.add_argument("--impersonate_service_account", default=None,
                        help="service account (or comma-separated delegation chain) to act as for gs://")


def add_storage_flags(parser: argparse.ArgumentParser) -> None:
    """Beam's storage flags, for the commands that do not hand their other flags to Beam."""
    group = parser.add_argument_group("storage (Beam's filesystem options, as for nsfw-scan run)")
    for cls in _CLASSES:
        cls._add_argparse_args(group)  # how each Beam options class declares its flags
    _google_flags(group)


def _storage_defaults() -> dict:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_storage_flags(parser)
    return vars(parser.parse_args([]))


def storage_from_args(args: argparse.Namespace) -> dict:
    """Set the storage flags of ``score`` / ``report`` in this process; returns them."""
    given = {k: getattr(args, k) for k, default in _storage_defaults().items() if getattr(args, k, default) != default}
    use_storage_options(given)
    return given


def storage_from_beam_args(beam_args: list[str]) -> dict:
    """Set the storage options among ``run``'s Beam flags in this process; returns them (for the workers)."""
    options = storage_options(PipelineOptions(beam_args))
    use_storage_options(options)
    return options


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
