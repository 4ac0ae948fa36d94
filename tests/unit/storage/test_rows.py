"""Durable row files and their salvage (``storage/rows.py``), on real Parquet files."""

import pyarrow.parquet as pq

from nsfw_scan.model.decision import Thresholds
from nsfw_scan.storage.layout import SALVAGED_PART
from nsfw_scan.storage.results_folder import finish_killed_runs, run_folders
from nsfw_scan.storage.rows import row_files, salvage, write_rows
from nsfw_scan.storage.schema import output_schema
from nsfw_scan.transforms.elements import Entry, Failure
from nsfw_scan.transforms.results import bad_line_error, failed_row, finish

SCHEMA = output_schema({})


def entry(uri, line=1) -> dict:
    return {"uri": uri, "source_manifest": "/m.txt", "source_line": line, "duplicates": 0}


def scored(uri: str, score: float) -> dict:
    return finish(entry(uri), score=score, model="open_nsfw:test", thresholds=Thresholds())


def malformed(line: int) -> dict:
    entry = Entry(None, {}, "/m.txt", line, "wrong field count")
    return failed_row(Failure.of(entry, bad_line_error(entry)))


def test_salvage_keeps_one_row_per_uri_and_skips_a_damaged_file(tmp_path):
    run = tmp_path / "run-1"
    write_rows(str(run), [scored("/a.jpg", 0.1), scored("/b.jpg", 0.9)], SCHEMA)
    # a bundle the runner retried writes its rows again; malformed lines are known by their source
    write_rows(str(run), [scored("/b.jpg", 0.9), malformed(7)], SCHEMA)
    write_rows(str(run), [malformed(7), malformed(8)], SCHEMA)
    damaged = run / "_rows" / "rows-damaged.parquet"
    damaged.write_bytes(b"PAR1 not really")
    assert len(row_files(str(run))) == 4

    assert salvage(str(run)) == 4
    table = pq.read_table(run / SALVAGED_PART)
    assert table.schema.equals(SCHEMA)
    rows = table.to_pylist()
    assert sorted((r["uri"], r["source_line"]) for r in rows if r["uri"]) == [("/a.jpg", 1), ("/b.jpg", 1)]
    assert sorted(r["source_line"] for r in rows if r["uri"] is None) == [7, 8]
    assert not (run / "_rows").exists()


def test_killed_runs_become_finished_runs_with_their_rows(tmp_path):
    kept, empty = tmp_path / "run-1", tmp_path / "run-2"
    write_rows(str(kept), [scored("/a.jpg", 0.1), failed_row(Failure(Entry("/c.jpg", {}, "/m.txt", 3), "not_found", "gone"))], SCHEMA)
    (kept / "beam-temp-part-x").mkdir()
    (kept / "beam-temp-part-x" / "partial").write_bytes(b"...")
    (empty / "beam-temp-part-y").mkdir(parents=True)
    assert run_folders(str(tmp_path)) == {str(kept): False, str(empty): False}

    salvaged, removed = finish_killed_runs(str(tmp_path))
    assert salvaged == {str(kept): 2} and removed == [str(empty)]
    assert run_folders(str(tmp_path)) == {str(kept): True}
    assert sorted(p.name for p in kept.iterdir()) == [SALVAGED_PART]
    assert {r["uri"] for r in pq.read_table(tmp_path).to_pylist()} == {"/a.jpg", "/c.jpg"}
