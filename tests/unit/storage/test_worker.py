"""``storage/worker.py``: one value per key per process."""

import threading
import time

import pytest

from nsfw_scan.storage.worker import once_per_process


def test_a_key_is_made_once_however_many_threads_ask():
    made = []

    def make():
        time.sleep(0.05)  # long enough for every thread to ask while it is made
        made.append(1)
        return object()

    key = ("test", "made once", time.monotonic())
    got = []
    threads = [threading.Thread(target=lambda: got.append(once_per_process(key, make))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert len(got) == 8 and all(value is got[0] for value in got)
    assert once_per_process(key, object) is got[0]


def test_other_keys_have_their_own_values_and_a_failure_is_not_kept():
    key = ("test", "failing", time.monotonic())

    def fail():
        raise OSError("not now")

    with pytest.raises(OSError):
        once_per_process(key, fail)
    assert once_per_process(key, lambda: "second try") == "second try"
    assert once_per_process(key + ("other",), lambda: None) is None
