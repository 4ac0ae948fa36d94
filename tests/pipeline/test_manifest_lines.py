"""Manifests in the pipeline (fake scorer, Beam's TestPipeline and in-process runs): every line
becomes one entry or one error row, duplicates are one URI, and partitions split the URIs exactly."""

import collections
import json

import pyarrow.parquet as pq
import pytest
from apache_beam import Create, Flatten, Map
from apache_beam.testing.util import assert_that, equal_to

from nsfw_scan.pipeline.run import run
from nsfw_scan.transforms.dedup import NewEntries
from nsfw_scan.transforms.manifest_plan import plan_manifests
from nsfw_scan.transforms.manifests import ReadManifests
from support.fake_scorer import FAKE_SPEC
from support.jobs import pipeline


def test_duplicates_first_line_wins_and_same_named_manifests_stay_apart(tmp_path, uploads):
    good, _ = uploads
    for day, ids in (("monday", "ab"), ("tuesday", "cd")):
        (tmp_path / day).mkdir()
        (tmp_path / day / "m.csv").write_text(
            f"uri,id\n{good[0]},{ids[0]}\nmalformed\n{good[1]},{ids[1]}\n{good[0]},{ids[0]}-again\n")
    monday, tuesday = str(tmp_path / "monday" / "m.csv"), str(tmp_path / "tuesday" / "m.csv")
    plan = plan_manifests([str(tmp_path / "*" / "m.csv")])
    with pipeline() as p:
        entries = {"entries": p | ReadManifests(plan), "done": p | "NoneDone" >> Create([])} | NewEntries()
        assert_that(entries | Map(lambda e: (e.uri, e.columns["id"], e.manifest, e.line, e.error, e.duplicates)),
                    equal_to([
            (good[0], "a", monday, 2, None, 3),  # four lines name it: the first by (manifest path, line)
            (good[1], "b", monday, 4, None, 1),
            (None, None, monday, 3, "expected 2 fields, got 1", 0),
            (None, None, tuesday, 3, "expected 2 fields, got 1", 0),
        ]))


def test_partitions_split_the_uris_exactly(tmp_path):
    uris = [f"/uploads/{i}.jpg" for i in range(200)]
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(uris + uris[:50]) + "\n")  # with duplicates
    plan = plan_manifests([str(manifest)])

    def each_uri_in_exactly_one_part(pairs):
        assert sorted(uri for _, uri in pairs) == sorted(uris)
        sizes = collections.Counter(part for part, _ in pairs)
        assert sorted(sizes) == [0, 1, 2] and min(sizes.values()) > 40, sizes  # a real split

    with pipeline() as p:
        parts = [{"entries": p | f"Part{i}" >> ReadManifests(plan, partition=(i, 3)),
                  "done": p | f"NoneDone{i}" >> Create([])} | f"New{i}" >> NewEntries()
                 | f"Label{i}" >> Map(lambda e, i=i: (i, e.uri)) for i in range(3)]
        assert_that(parts | Flatten(), each_uri_in_exactly_one_part)


@pytest.mark.parametrize("data_lines", [4, 5_000])
def test_a_quote_that_never_closes_costs_only_its_own_line(tmp_path, data_lines):
    uris = [str(tmp_path / f"upload-{i}.jpg") for i in range(data_lines)]
    lines = [f"q{i},{uri},user{i}" for i, uri in enumerate(uris)]
    lines[1] = f'q1,"{uris[1]},user1'  # manifest line 3: a quote that never closes
    manifest, out = tmp_path / "uploads.csv", tmp_path / "out"
    manifest.write_text("upload_id,uri,user_id\n" + "\n".join(lines) + "\n")
    summary = run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    rows = pq.read_table(out).to_pylist()
    by_uri = {r["uri"]: r for r in rows if r["uri"] is not None}
    assert sorted(by_uri) == sorted(uris[:1] + uris[2:])
    assert all(by_uri[u]["upload_id"] == f"q{i}" and by_uri[u]["source_line"] == i + 2
               for i, u in enumerate(uris) if i != 1)
    (bad,) = [r for r in rows if r["uri"] is None]
    assert bad["error_kind"] == "bad_manifest_line" and bad["source_line"] == 3
    assert bad["error"].startswith(f"bad_manifest_line: {manifest} line 3: a quote opens a field")
    assert summary["manifest_lines"] == data_lines + 1 and summary["rows"] == data_lines
    assert summary["accounting"] == {"lines": data_lines + 1, "rows": data_lines - 1, "bad_lines": 1, "duplicates": 0,
                                     "already_done": 0, "blank_or_comment": 0, "headers": 1, "continued": 0}


def test_multi_line_fields_and_quoted_uris_that_swallow_lines(tmp_path):
    a, b, c, d = (str(tmp_path / f"{name}.jpg") for name in "abcd")
    manifest, out = tmp_path / "uploads.csv", tmp_path / "out"
    manifest.write_bytes((
        "id,uri,note\r\n"
        f'1,{a},"Excel writes\r\nline breaks\r\ninside quotes"\r\n'  # lines 2-4: one record
        f'2,"{b},x\r\n'  # line 5: the URI's quote closes on line 6, swallowing it
        f'3,{c}",y\r\n'  # line 6: read on its own
        "\r\n"  # line 7: blank
        f"4,{d},z\r\n"  # line 8
        f"4,{d},again\r\n"  # line 9: a duplicate
    ).encode())
    summary = run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    rows = {(r["uri"], r["source_line"]): r for r in pq.read_table(out).to_pylist()}
    assert set(rows) == {(a, 2), (None, 5), (c + '"', 6), (d, 8)}
    assert rows[a, 2]["note"] == "Excel writes\r\nline breaks\r\ninside quotes"
    assert "line 5: a quote opens the URI field" in rows[None, 5]["error"]
    assert rows[d, 8]["duplicates"] == 1
    assert summary["accounting"] == {"lines": 9, "rows": 3, "bad_lines": 1, "duplicates": 1, "already_done": 0,
                                     "blank_or_comment": 1, "headers": 1, "continued": 2}


def test_no_manifest_content_stops_the_job(tmp_path, uploads):
    good, _ = uploads
    text, jsonl, out = tmp_path / "list.txt", tmp_path / "list.jsonl", tmp_path / "out"
    text.write_bytes(b"\n".join([good[0].encode(), b"\xff\xfe\x00garbage", b"# a comment", b"x" * (2 << 20),
                                 b"", good[1].encode() + b"\r", good[0].encode()]) + b"\n")
    jsonl.write_text("\n".join([json.dumps({"uri": good[2]}), "[" * 100_000, '"just a string"',
                                json.dumps({"uri": good[3]}), ""]))
    summary = run(["--manifest", str(text), "--manifest", str(jsonl), "--output", str(out)], spec=FAKE_SPEC)
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["uri"] for r in rows if r["uri"]) == sorted(good[:4])
    bad = sorted((r["source_manifest"], r["source_line"], r["error"]) for r in rows if r["uri"] is None)
    expected = [(jsonl, 2, "not JSON (nested too deeply)"), (jsonl, 3, "not a JSON object"),
                (text, 2, "not valid UTF-8 text"), (text, 4, "the line is longer than 1048576 characters")]
    assert bad == [(str(m), n, f"bad_manifest_line: {m} line {n}: {why}") for m, n, why in expected]
    assert summary["accounting"] == {"lines": 11, "rows": 4, "bad_lines": 4, "duplicates": 1, "already_done": 0,
                                     "blank_or_comment": 2, "headers": 0, "continued": 0}


def test_one_file_is_one_uri_however_a_manifest_names_it(tmp_path, uploads):
    good, _ = uploads  # in tmp_path/uploads
    lists = tmp_path / "lists"
    lists.mkdir()
    name = good[0].rsplit("/", 1)[1]
    manifest, out = lists / "m.txt", tmp_path / "out"
    manifest.write_text(f"../uploads/{name}\n{good[0]}\n{tmp_path}//uploads/./{name}\n./../uploads/../uploads/{name}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    (row,) = pq.read_table(out).to_pylist()
    assert row["uri"] == good[0] and row["duplicates"] == 3 and row["source_line"] == 1
    assert summary["duplicates"] == 3 and summary["rows"] == 1 and summary["scored"] == 1
