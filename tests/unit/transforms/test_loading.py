"""The loading step's process-wide settings."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json
from threadpoolctl import threadpool_info
from nsfw_scan.transforms.loading import Loading

blas = lambda: [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
before = blas()
loading = Loading("yahoo", 10**8, 10**9).start()
print(json.dumps({"before": before, "after": blas()}))
"""


def test_numpy_blas_runs_in_the_calling_thread_once_loading_starts():
    """OpenBLAS's own thread pool would compete with the decoding pool and TensorFlow for the
    same cores (and spin while it waits); a started Loading keeps it to one thread."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    threads = json.loads(out.stdout.splitlines()[-1])
    if not threads["before"]:
        pytest.skip("numpy here is built without a BLAS that threadpoolctl can size")
    assert threads["after"] == [1] * len(threads["before"])
