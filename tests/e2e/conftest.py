"""Fixtures of the end-to-end tests: S3 (moto's server) and GCS (gcp-storage-emulator) on
127.0.0.1, a new bucket on each in turn, and the Flink and Spark clusters (``support.stores``,
``support.clusters``)."""

from __future__ import annotations

import pytest

from support.clusters import Cluster, start_flink, start_spark
from support.stores import BIN, Store, free_port, gcs_store, s3_store, serve, stop


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    port = free_port()
    proc = serve([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/",
                 tmp_path_factory.mktemp("moto") / "server.log")
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    port = free_port()
    proc = serve([str(BIN / "gcp-storage-emulator"), "start", "-H", "127.0.0.1", "--port", str(port), "-M", "-q"],
                 f"http://127.0.0.1:{port}/storage/v1/b", tmp_path_factory.mktemp("gcs") / "server.log")
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(params=["s3", "gs"])
def store(request) -> Store:
    """A new bucket on each store in turn."""
    if request.param == "s3":
        return s3_store(request.getfixturevalue("moto_server"))
    return gcs_store(request.getfixturevalue("gcs_emulator"))


@pytest.fixture(scope="session")
def flink_cluster(tmp_path_factory):
    cluster = start_flink(tmp_path_factory.mktemp("flink"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    cluster = start_spark(tmp_path_factory.mktemp("spark"))
    yield cluster
    cluster.stop()


@pytest.fixture(params=["flink", "spark"])
def cluster(request) -> Cluster:
    """Each engine in turn."""
    return request.getfixturevalue(f"{request.param}_cluster")
