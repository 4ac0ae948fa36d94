"""The loading step's process-wide settings."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json
from threadpoolctl import threadpool_info
from nsfw_scan.transforms.read_and_decode import Loading

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


POISONED = (41, 31)  # the size of the one picture whose every step fails below


def _failing(original, failure, poisoned):
    """``original``, except that it raises ``failure`` when ``poisoned(*args)``."""
    def step(*args, **kwargs):
        if poisoned(*args):
            raise failure
        return original(*args, **kwargs)
    return step


STAGES = {  # where a failure is injected: (module, function, which call is the poisoned file's)
    "reading": ("nsfw_scan.transforms.read_and_decode", "read_bytes", lambda uri, *_: uri.endswith("poisoned.png")),
    "decoding": ("nsfw_scan.model.pictures.preprocess", "resize", lambda image, *_: image.size == POISONED),
    "hashing": ("nsfw_scan.model.pictures.pdq", "hash_of_resized", lambda resized, decoded, full: full == POISONED),
    "other views": ("nsfw_scan.model.pictures.preprocess", "views_of", lambda image, *_: image.size == POISONED),
}


@pytest.mark.parametrize("failure", [MemoryError(), RuntimeError("a fault no step expected")], ids=type)
@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("threads", [0, 2], ids=["in the caller", "in the pools"])
def test_any_failure_inside_one_files_loading_is_that_files_error(tmp_path, monkeypatch, stage, failure, threads):
    """A MemoryError or an exception no step expected, in any stage of one file's loading, is
    that file's error row (``too_large``, or its stage's kind with the exception named); the
    other files of the same Loading are loaded as ever."""
    import importlib

    from nsfw_scan.model.pictures.views import ViewPolicy
    from nsfw_scan.storage.read import ReadPolicy
    from nsfw_scan.transforms.elements import Entry
    from nsfw_scan.transforms.read_and_decode import Ahead, Loading
    from support.images import png

    module, name, poisoned = STAGES[stage]
    module = importlib.import_module(module)
    monkeypatch.setattr(module, name, _failing(getattr(module, name), failure, poisoned))
    good = [png(tmp_path / f"good{i}.png", (40 * i, 90, 200)) for i in range(3)]
    uris = good[:1] + [png(tmp_path / "poisoned.png", (250, 20, 20), POISONED)] + good[1:]
    loading = Loading("yahoo", 10**8, 10**9, ReadPolicy(threads=threads), decode_threads=threads,
                      views=ViewPolicy("all")).start()
    entries = [Entry(uri, {}, "m.txt", line) for line, uri in enumerate(uris, 1)]
    if threads:
        ahead = Ahead(2)
        results = [r for e in entries for r, _ in ahead.add(loading.submit(e))] + [r for r, _ in ahead.drain()]
    else:
        results = [loading.load(e) for e in entries]
    assert [r.failed for r in results] == [False, True, False, False], results
    failed = results[1]
    expected = "too_large" if isinstance(failure, MemoryError) else "read_error" if stage == "reading" else "undecodable"
    assert failed.kind == expected
    assert isinstance(failure, MemoryError) or "RuntimeError: a fault no step expected" in failed.message
    assert (failed.sha256 is None) == (stage == "reading")  # bytes that were read keep their hash
    if stage == "reading":
        assert loading.hash(entries[1]).failed and not loading.hash(entries[0]).failed
