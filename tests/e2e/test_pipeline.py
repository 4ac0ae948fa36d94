"""The Beam job, run for real on the DirectRunner, its Parquet read back with pyarrow."""

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nsfw_scan.pipeline.run import run
from nsfw_scan.storage.schema import output_schema
from nsfw_scan.transforms.manifest_formats import ManifestError
from support.cli import nsfw_scan
from support.corpus import COMPACT, HOSTILE, REAL, SHARED, corpus_files, heif_files, needs_shared, reference
from support.jobs import by_uri, model_loads, results, run_job

REAL_FILES = corpus_files(REAL)


@pytest.mark.parametrize("corpus", [
    pytest.param(COMPACT, id="compact"),
    pytest.param(SHARED, id="shared", marks=[needs_shared, pytest.mark.slow]),
])
def test_whole_corpus_one_row_per_uri_with_reference_scores(tmp_path, corpus):
    empty = tmp_path / "zero.jpg"
    empty.touch()
    text = tmp_path / "readme.jpg"
    text.write_text("not an image\n")
    real = [str(corpus / "real" / f) for f in corpus_files(corpus / "real")]
    hostile = [str(corpus / "hostile" / f) for f in corpus_files(corpus / "hostile")]
    odd = [str(tmp_path / "missing.jpg"), str(empty), str(tmp_path), str(text)]
    manifest = tmp_path / "all.txt"
    # a few duplicates, across and within lines
    manifest.write_text("\n".join(["# nightly backlog", *real, *hostile, *odd, real[0], hostile[5], ""]))

    summary, rows = run_job(tmp_path, manifest, extra=["--exact"])  # Yahoo's steps for every file
    rows = by_uri(rows)
    assert set(rows) == set(real + hostile + odd)
    assert summary["manifest_rows"] == len(real) + len(hostile) + len(odd) + 2
    assert summary["duplicates"] == 2 and summary["rows"] == len(rows)
    assert summary["model_loads"] in model_loads(rows) == {1}

    for name, files in (("real", real), ("hostile", hostile)):
        expected = {str(corpus / name / k): v for k, v in reference(name, corpus).items()}
        heif = {str(corpus / name / k) for k in heif_files(corpus / name)}  # not decoded by Yahoo's loader
        scored = {u for u in files if rows[u]["score"] is not None}
        assert scored == set(expected) | heif and not heif & set(expected)
        # Yahoo's view of every file matches the reference; so does the score of every file
        # Yahoo's view decides, the others score at least as high
        assert max(abs(rows[u]["yahoo_score"] - expected[u]) for u in expected) < 1e-3
        # stills of 64 pixels a side or more have Yahoo's view and a region map's 49 windows or more
        assert all(rows[u]["views"] >= 50 for u in expected
                   if rows[u]["frames"] == 1 and min(rows[u]["width"], rows[u]["height"]) >= 64)
        by_yahoo = [u for u in expected if rows[u]["view"] == "yahoo"]
        assert max((abs(rows[u]["score"] - expected[u]) for u in by_yahoo), default=0) < 1e-3
        assert all(rows[u]["score"] == rows[u]["yahoo_score"] for u in by_yahoo)
        assert all(rows[u]["score"] >= rows[u]["yahoo_score"] for u in scored)
    failed = [r for r in rows.values() if r["score"] is None]
    assert all(r["decision"] == "error" and r["error"].split(":")[0] for r in failed)
    assert [rows[u]["error"].split(":")[0] for u in odd] == ["not_found", "empty", "not_a_file", "undecodable"]
    assert summary["errors"] == len(failed) == sum(summary["errors_by_kind"].values())
    assert summary["scored"] == len(rows) - len(failed)
    for r in rows.values():
        if r["score"] is not None:
            assert r["decision"] in ("safe", "review", "nsfw")
            assert r["width"] > 0 and r["height"] > 0 and len(r["sha256"]) == 64 and r["bytes"] > 0
    assert json.loads((tmp_path / "out" / "_SUMMARY.json").read_text()) == summary


def test_manifest_formats_pass_through_columns(tmp_path):
    images = tmp_path / "images"
    shutil.copytree(REAL, images)
    shutil.copy(HOSTILE / "hopper.jpg", images / "hopper.jpg")
    names = REAL_FILES[:6]
    (tmp_path / "a.txt").write_text(f"# comment\n\nimages/{names[0]}\n  images/{names[1]}  \n")
    # line 3 lacks a field: an error row, and names[3] is not scored
    (tmp_path / "b.csv").write_text(f"id,uri,note\n7,images/{names[2]},\"x, y\"\n8,images/{names[3]}\n")
    (tmp_path / "c.tsv").write_text(f"uri\tid\nimages/{names[4]}\t9\n")
    (tmp_path / "d.jsonl").write_text(
        json.dumps({"uri": f"images/{names[5]}", "id": "10", "note": "json"}) + "\n{broken\n"
    )
    with gzip.open(tmp_path / "e.txt.gz", "wt") as f:
        f.write(f"{images / names[0]}\n")  # absolute; the same file as a.txt names: a duplicate
    pq.write_table(pa.table({"id": pa.array([11, 12], pa.int64()),
                             "uri": ["images/hopper.jpg", None]}), tmp_path / "f.parquet")
    # the same column typed int in Parquet and text elsewhere is written as text

    summary, rows = run_job(tmp_path, tmp_path / "a.txt", tmp_path / "[b-d].*", tmp_path / "e.txt.gz",
                            tmp_path / "f.parquet")
    table = pq.read_table(tmp_path / "out")
    assert table.schema == output_schema({"id": pa.string(), "note": pa.string()})
    good = by_uri([r for r in rows if r["uri"]])
    expected = {**reference("real"), "hopper.jpg": reference("hostile")["hopper.jpg"]}
    scored = [n for n in names if n != names[3]] + ["hopper.jpg"]
    assert set(good) == {str(images / n) for n in scored}
    for name in scored:
        row = good[str(images / name)]
        assert abs(row["yahoo_score"] - expected[name]) < 1e-3 and row["score"] >= row["yahoo_score"]
    assert good[str(images / names[2])]["id"] == "7" and good[str(images / names[2])]["note"] == "x, y"
    assert good[str(images / names[5])]["note"] == "json"
    assert good[str(images / names[0])]["duplicates"] == 1 and good[str(images / names[1])]["duplicates"] == 0
    assert good[str(images / "hopper.jpg")]["id"] == "11"
    bad = sorted(r["error"] for r in rows if not r["uri"])
    assert bad == [
        f"bad_manifest_line: {tmp_path / 'b.csv'} line 3: expected 3 fields, got 2",
        f"bad_manifest_line: {tmp_path / 'd.jsonl'} line 2: not JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))",
        f"bad_manifest_line: {tmp_path / 'f.parquet'} line 2: no URI in column 'uri'",
    ]
    assert {(r["error_kind"], r["source_manifest"], r["source_line"]) for r in rows if not r["uri"]} == {
        ("bad_manifest_line", str(tmp_path / "b.csv"), 3), ("bad_manifest_line", str(tmp_path / "d.jsonl"), 2),
        ("bad_manifest_line", str(tmp_path / "f.parquet"), 2)}
    assert all(r["error_kind"] is None and r["model"] for r in good.values())
    assert summary["duplicates"] == 1 and summary["scored"] == 6 and summary["errors"] == 3


def test_config_and_flags_override_defaults(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("name\n" + "".join(f"{REAL / f}\n" for f in ("astronaut.png", "coffee.png", "chelsea.png")))
    config = tmp_path / "policy.yaml"
    config.write_text("thresholds:\n  safe_below: 0.01\n  nsfw_from: 0.03\nbatch:\n  min_size: 1\n  max_size: 2\n")
    summary, rows = run_job(tmp_path, manifest, extra=["--config", config, "--uri-column", "name", "--views", "whole"])
    decisions = {r["uri"].rsplit("/", 1)[-1]: r["decision"] for r in rows}
    assert decisions == {"astronaut.png": "nsfw", "coffee.png": "review", "chelsea.png": "safe"}
    assert summary["decisions"] == {"safe": 1, "review": 1, "nsfw": 1, "error": 0}


def test_missing_manifest_fails_before_the_pipeline_starts(tmp_path):
    with pytest.raises(ManifestError, match="no manifest found at '.*nowhere/\\*.txt'"):
        run(["--manifest", str(tmp_path / "nowhere" / "*.txt"), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    (tmp_path / "m.csv").write_text("path,id\nx.jpg,1\n")
    with pytest.raises(ManifestError, match="m.csv: no 'uri' column .*--uri-column"):
        run(["--manifest", str(tmp_path / "m.csv"), "--output", str(tmp_path / "out")])


def test_failed_run_leaves_no_result_files(tmp_path, monkeypatch):
    from nsfw_scan.model.engines import TensorFlowScorer

    def broken(self, batch):
        raise RuntimeError("simulated worker failure")

    monkeypatch.setattr(TensorFlowScorer, "score_pixels", broken)
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(str(REAL / f) for f in REAL_FILES))
    with pytest.raises(Exception, match="simulated worker failure"):
        run(["--manifest", str(manifest), "--output", str(tmp_path / "out")])
    assert not list((tmp_path / "out").rglob("*.parquet"))
    assert not (tmp_path / "out" / "_SUMMARY.json").exists()


def test_cli_run_prints_summary(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{REAL / 'grace_hopper.jpg'}\n{tmp_path / 'gone.png'}\n")
    result = nsfw_scan("run", "--manifest", manifest, "--output", tmp_path / "out", "--direct_num_workers", "1")
    assert result.returncode == 0, result.stderr
    assert "rows written   2" in result.stdout and "not_found 1" in result.stdout
    rows = by_uri(results(tmp_path / "out"))
    assert rows[str(REAL / "grace_hopper.jpg")]["decision"] == "safe"

    result = nsfw_scan("run", "--manifest", tmp_path / "absent.txt", "--output", tmp_path / "out2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("nsfw-scan: error: no manifest found at")
