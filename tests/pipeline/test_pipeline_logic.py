"""The fast layer: the pipeline's logic (manifests, de-duplication, resume joins, partitions,
content joins, error paths) on Beam's TestPipeline with ``assert_that``, and a fake engine whose
score is a fixed function of the preprocessed array (``support.fake_engine``, passed to ``build``
and ``run`` as ``engine_spec``) — no TensorFlow, seconds per test. The real model runs in the
tests of ``tests/e2e``."""

import collections
import io
import json
import shutil
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam import Create, Flatten, Map
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from support.fake_engine import FAKE_ENGINE, FakeEngine, fake_score
from nsfw_scan.model.preprocess import load_image
from nsfw_scan.pipeline.config import load_config
from nsfw_scan.pipeline.run import build, run
from nsfw_scan.transforms.earlier import done_key
from nsfw_scan.transforms.manifests import NewEntries, ReadManifests, bad_line_key, plan_manifests


def pipeline():
    # Beam's in-process runner (what DirectRunner uses for batch pipelines), never Prism
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return BeamTestPipeline(runner=FnApiRunner())


def png(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path, format="PNG")
    return str(path)


def expected_score(path) -> float:
    with open(path, "rb") as f:
        return float(fake_score(load_image(f.read()).array))


@pytest.fixture
def uploads(tmp_path):
    """Images of different greys (so different fake scores) and the usual broken uploads."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    good = [png(folder / f"grey{v}.png", (v, v, v)) for v in (0, 60, 120, 180, 240)]
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image\n")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:2000])
    broken = {str(folder / "empty.jpg"): "empty", str(folder / "text.jpg"): "undecodable",
              str(folder / "truncated.jpg"): "truncated", str(folder / "gone.jpg"): "not_found",
              str(folder): "not_a_file"}
    return good, broken


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


def test_resume_join_drops_what_earlier_runs_covered(tmp_path, uploads):
    good, _ = uploads
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri,id\n" + "".join(f"{u},{i}\n" for i, u in enumerate(good)) + "malformed\n")
    plan = plan_manifests([str(manifest)])
    covered = [good[0], good[3], bad_line_key(str(manifest), 7), str(tmp_path / "only-in-an-earlier-run.png")]
    with pipeline() as p:
        done = p | "Done" >> Create(covered)
        entries = {"entries": p | ReadManifests(plan), "done": done} | NewEntries()
        assert_that(entries | Map(lambda e: e.uri), equal_to([good[1], good[2], good[4]]))


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


def test_whole_graph_scores_and_error_paths(tmp_path, uploads):
    good, broken = uploads
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri,id\n" + "".join(f"{u},{i}\n" for i, u in enumerate(good + list(broken)))
                        + "only-one-field-missing-the-id\n")
    plan = plan_manifests([str(manifest)])
    config = load_config(None, {"batch": {"min_size": 1, "max_size": 3}, "decoding": {"threads": 2},
                                "thresholds": {"safe_below": 0.45, "nsfw_from": 0.6}})
    with pipeline() as p:
        rows = build(p, plan, config, FakeEngine.model_id, str(tmp_path / "out" / "run-1"),
                     engine_spec=FAKE_ENGINE)
        outcome = rows | Map(lambda r: (r["uri"], r["id"], r["decision"], r["error_kind"] or "",
                                        None if r["score"] is None else round(r["score"], 5)))
        expected = []
        for i, uri in enumerate(good):
            score = expected_score(uri)
            decision = config.thresholds.decide(score)
            expected.append((uri, str(i), decision, "", round(score, 5)))
        expected += [(uri, str(len(good) + i), "error", kind, None) for i, (uri, kind) in enumerate(broken.items())]
        expected.append((None, None, "error", "bad_manifest_line", None))
        assert_that(outcome, equal_to(expected))
    assert {d for _, _, d, _, _ in expected} >= {"safe", "review", "nsfw", "error"}  # every path taken
    written = pq.read_table(tmp_path / "out").to_pylist()
    assert len(written) == len(expected)
    assert all(r["model"] == (FakeEngine.model_id if r["score"] is not None else None) for r in written)


def test_content_joins_share_and_reuse_scores(tmp_path, uploads):
    good, _ = uploads
    copies = []
    for i in range(3):  # one upload under three names
        copies.append(str(tmp_path / f"copy{i}.png"))
        shutil.copy(good[2], copies[-1])
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(copies + [good[0]]) + "\n")
    first = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"], engine_spec=FAKE_ENGINE)
    assert first["content_duplicates"] == 2 and first["scored"] == 4 and first["model_loads"] == 1
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert len({rows[c]["score"] for c in copies}) == 1
    assert rows[copies[0]]["score"] == pytest.approx(expected_score(good[2]))

    later = str(tmp_path / "copy-late.png")  # the next night: known bytes under a new name
    shutil.copy(good[2], later)
    manifest.write_text(f"{later}\n{good[1]}\n")
    second = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"], engine_spec=FAKE_ENGINE)
    assert second["content_reused"] == 1 and second["scored"] == 2 and second["already_done"] == 0
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert rows[later]["score"] == rows[copies[0]]["score"] and len(rows) == 6


def test_reruns_resume_rescore_errors_and_force(tmp_path, uploads):
    good, broken = uploads
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    missing = str(tmp_path / "late.png")
    manifest.write_text("\n".join(good[:3] + [missing]) + "\n")
    assert run(["--manifest", str(manifest), "--output", str(out)], engine_spec=FAKE_ENGINE)["errors"] == 1
    manifest.write_text("\n".join(good + [missing]) + "\n")
    grown = run(["--manifest", str(manifest), "--output", str(out)], engine_spec=FAKE_ENGINE)
    assert grown["already_done"] == 4 and grown["scored"] == 2 and grown["errors"] == 0
    png(missing, (30, 30, 30))  # the upload arrives
    again = run(["--manifest", str(manifest), "--output", str(out), "--rescore-errors"], engine_spec=FAKE_ENGINE)
    assert again["scored"] == 1 and again["already_done"] == 5
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 6 and all(r["error"] is None for r in rows)
    forced = run(["--manifest", str(manifest), "--output", str(out), "--force"], engine_spec=FAKE_ENGINE)
    assert forced["scored"] == 6 and len(list(out.glob("run-*"))) == 1


def test_earlier_bad_line_rows_map_back_to_their_key():
    path = "/data/2026: nightly/m.csv"  # colons and spaces in a manifest's path
    row = {"uri": None, "decision": "error", "source_manifest": path, "source_line": 12}
    assert list(done_key(row, rescore_errors=False)) == [bad_line_key(path, 12)]
    failed = {"uri": "/a.png", "decision": "error", "source_manifest": path, "source_line": 3}
    assert list(done_key(failed, rescore_errors=True)) == []
    assert list(done_key(failed, rescore_errors=False)) == ["/a.png"]


@pytest.mark.parametrize("data_lines", [4, 5_000])
def test_a_quote_that_never_closes_costs_only_its_own_line(tmp_path, data_lines):
    uris = [str(tmp_path / f"upload-{i}.jpg") for i in range(data_lines)]
    lines = [f"q{i},{uri},user{i}" for i, uri in enumerate(uris)]
    lines[1] = f'q1,"{uris[1]},user1'  # manifest line 3: a quote that never closes
    manifest, out = tmp_path / "uploads.csv", tmp_path / "out"
    manifest.write_text("upload_id,uri,user_id\n" + "\n".join(lines) + "\n")
    summary = run(["--manifest", str(manifest), "--output", str(out)], engine_spec=FAKE_ENGINE)
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
    summary = run(["--manifest", str(manifest), "--output", str(out)], engine_spec=FAKE_ENGINE)
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
    summary = run(["--manifest", str(text), "--manifest", str(jsonl), "--output", str(out)], engine_spec=FAKE_ENGINE)
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["uri"] for r in rows if r["uri"]) == sorted(good[:4])
    bad = sorted((r["source_manifest"], r["source_line"], r["error"]) for r in rows if r["uri"] is None)
    expected = [(jsonl, 2, "not JSON (nested too deeply)"), (jsonl, 3, "not a JSON object"),
                (text, 2, "not valid UTF-8 text"), (text, 4, "the line is longer than 1048576 characters")]
    assert bad == [(str(m), n, f"bad_manifest_line: {m} line {n}: {why}") for m, n, why in expected]
    assert summary["accounting"] == {"lines": 11, "rows": 4, "bad_lines": 4, "duplicates": 1, "already_done": 0,
                                     "blank_or_comment": 2, "headers": 0, "continued": 0}


def test_a_run_whose_lines_do_not_add_up_fails():
    from nsfw_scan.pipeline.summary import AccountingError, check_accounting

    summary = {"manifest_rows": 4,
               "accounting": {"lines": 6, "rows": 2, "bad_lines": 1, "duplicates": 1, "already_done": 0,
                              "blank_or_comment": 0, "headers": 1, "continued": 0}}
    with pytest.raises(AccountingError, match="6 read, 5 accounted for"):
        check_accounting(summary)
    summary["accounting"]["blank_or_comment"] = 1
    check_accounting(summary)
    summary["manifest_rows"] = 5  # an entry that became nothing
    with pytest.raises(AccountingError, match="5 entries"):
        check_accounting(summary)


def test_one_file_is_one_uri_however_a_manifest_names_it(tmp_path, uploads):
    good, _ = uploads  # in tmp_path/uploads
    lists = tmp_path / "lists"
    lists.mkdir()
    name = good[0].rsplit("/", 1)[1]
    manifest, out = lists / "m.txt", tmp_path / "out"
    manifest.write_text(f"../uploads/{name}\n{good[0]}\n{tmp_path}//uploads/./{name}\n./../uploads/../uploads/{name}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out)], engine_spec=FAKE_ENGINE)
    (row,) = pq.read_table(out).to_pylist()
    assert row["uri"] == good[0] and row["duplicates"] == 3 and row["source_line"] == 1
    assert summary["duplicates"] == 3 and summary["rows"] == 1 and summary["scored"] == 1


def test_urls_that_can_never_be_fetched_are_one_permanent_error(tmp_path):
    config = tmp_path / "c.yaml"  # the address guard and the backoff do not hide a retry
    config.write_text("http: {allow_networks: [127.0.0.0/8]}\nreading: {backoff_s: 0.2}\n")
    uris = ["http://127.0.0.1:9/an upload.jpg", "https://127.0.0.1:9/a\x01b.jpg", "http:///no-host.jpg",
            "s3:///no-bucket.jpg", "http://127.0.0.1:port/a.jpg"]
    manifest, out = tmp_path / "m.jsonl", tmp_path / "out"
    manifest.write_text("".join(json.dumps({"uri": u}) + "\n" for u in uris))
    summary = run(["--manifest", str(manifest), "--output", str(out), "--config", str(config)], engine_spec=FAKE_ENGINE)
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert sorted(rows) == sorted(uris) and summary["errors_by_kind"] == {"bad_uri": len(uris)}
    assert all(r["error_kind"] == "bad_uri" and "attempts" not in r["error"] for r in rows.values()), rows
    assert "contains a space at position 21" in rows[uris[0]]["error"]
    assert "no host" in rows[uris[2]]["error"] and "no bucket" in rows[uris[3]]["error"]
    from nsfw_scan.model.errors import ERROR_KINDS
    from nsfw_scan.transforms.read import ReadPolicy, read_bytes

    started = time.monotonic()  # one attempt, no waiting for the next
    with pytest.raises(Exception, match="^bad_uri: "):
        read_bytes(uris[0], 1 << 20, ReadPolicy(backoff_s=1.0))
    assert time.monotonic() - started < 0.5 and "bad_uri" in ERROR_KINDS


def test_empty_and_undecodable_rows_carry_what_is_known(tmp_path, uploads):
    import hashlib

    _, broken = uploads
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(broken) + "\n")
    run(["--manifest", str(manifest), "--output", str(out)], engine_spec=FAKE_ENGINE)
    rows = {r["error_kind"]: r for r in pq.read_table(out).to_pylist()}
    assert (rows["empty"]["bytes"], rows["empty"]["sha256"]) == (0, hashlib.sha256(b"").hexdigest())
    assert rows["undecodable"]["bytes"] > 0 and rows["truncated"]["sha256"]
    assert [r["loader"] for r in rows.values()] == [None] * len(rows)  # none was decoded
