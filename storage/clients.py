"""One client factory per object store, each made from the :class:`StorageOptions`.

``s3_client`` makes a boto3 client from the ``S3Options`` the way Beam's own S3 filesystem does
(the same endpoint, keys, region, API version, SSL and verification settings), through boto3's
public API; ``gcs_client`` is Beam's own GCS client for those options (``gcsio``), with its
credentials and project. Reads of gs:// and everything else of Beam's filesystems go through
``FileSystems``, configured by :meth:`StorageOptions.apply`.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import S3Options

from .options import StorageOptions


def s3_client(options: StorageOptions, timeout_s: float | None = None, connections: int | None = None):
    """A boto3 S3 client. With ``timeout_s``: socket timeouts of that many seconds, a pool of
    ``connections`` connections, and no retries of botocore's own (one attempt per call);
    without, botocore's defaults, as Beam's S3 filesystem has them."""
    import boto3

    s3 = options.pipeline_options().view_as(S3Options)
    config = None
    if timeout_s is not None:
        from botocore.config import Config

        config = Config(connect_timeout=timeout_s, read_timeout=timeout_s, max_pool_connections=connections or 10,
                        retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.session.Session().client(
        "s3", region_name=s3.s3_region_name, api_version=s3.s3_api_version, use_ssl=not s3.s3_disable_ssl,
        verify=s3.s3_verify, endpoint_url=s3.s3_endpoint_url, aws_access_key_id=s3.s3_access_key_id,
        aws_secret_access_key=s3.s3_secret_access_key, aws_session_token=s3.s3_session_token, config=config)


def gcs_client(options: StorageOptions):
    """A ``google.cloud.storage.Client``, as Beam's GCS filesystem makes it."""
    from apache_beam.io.gcp.gcsio import create_storage_client

    return create_storage_client(options.pipeline_options())
