"""Rows of earlier runs -> the keys that a new run skips (``transforms/earlier.py``)."""

from nsfw_scan.transforms.earlier import done_key
from nsfw_scan.transforms.elements import bad_line_key


def test_earlier_bad_line_rows_map_back_to_their_key():
    path = "/data/2026: nightly/m.csv"  # colons and spaces in a manifest's path
    row = {"uri": None, "decision": "error", "source_manifest": path, "source_line": 12}
    assert list(done_key(row, rescore_errors=False)) == [bad_line_key(path, 12)]
    failed = {"uri": "/a.png", "decision": "error", "source_manifest": path, "source_line": 3}
    assert list(done_key(failed, rescore_errors=True)) == []
    assert list(done_key(failed, rescore_errors=False)) == ["/a.png"]
