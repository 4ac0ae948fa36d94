"""The fast layer: the job's whole graph on Beam's TestPipeline with ``assert_that``, its error
paths and the accounting of its lines, with a fake scorer whose score is a fixed function of
the preprocessed array (``support.fake_scorer``, passed to ``build`` and ``run`` as ``spec``)
— no TensorFlow, seconds per test. Manifest lines: test_manifest_lines.py; earlier runs:
test_earlier_runs.py; the real model runs in the tests of ``tests/e2e``."""

import json
import time

import pyarrow.parquet as pq
import pytest
from apache_beam import Map
from apache_beam.testing.util import assert_that, equal_to

from nsfw_scan.pipeline.config import load_config
from nsfw_scan.pipeline.run import build, run
from nsfw_scan.transforms.manifest_plan import plan_manifests
from support.fake_scorer import FAKE_SPEC, FakeScorer, expected_score
from support.jobs import pipeline


def test_whole_graph_scores_and_error_paths(tmp_path, uploads):
    good, broken = uploads
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri,id\n" + "".join(f"{u},{i}\n" for i, u in enumerate(good + list(broken)))
                        + "only-one-field-missing-the-id\n")
    plan = plan_manifests([str(manifest)])
    config = load_config(None, {"batch": {"min_size": 1, "max_size": 3}, "decoding": {"threads": 2},
                                "thresholds": {"safe_below": 0.45, "nsfw_from": 0.6}})
    with pipeline() as p:
        rows = build(p, plan, config, FakeScorer.model_id, str(tmp_path / "out" / "run-1"),
                     spec=FAKE_SPEC)
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
    assert all(r["model"] == (FakeScorer.model_id if r["score"] is not None else None) for r in written)


def test_what_does_not_add_up_is_named():
    from nsfw_scan.pipeline.summary import accounting_problem

    summary = {"manifest_rows": 4,
               "accounting": {"lines": 6, "rows": 2, "bad_lines": 1, "duplicates": 1, "already_done": 0,
                              "blank_or_comment": 0, "headers": 1, "continued": 0}}
    assert "6 read, 5 accounted for" in accounting_problem(summary)
    summary["accounting"]["blank_or_comment"] = 1
    assert accounting_problem(summary) is None
    summary["manifest_rows"] = 5  # an entry that became nothing
    assert "5 entries" in accounting_problem(summary)
    assert "counted twice" in accounting_problem({**summary, "counters_attempted": True})


def test_rows_are_counted_from_the_files_and_a_run_that_does_not_add_up_keeps_them(tmp_path, uploads, monkeypatch):
    """A runner that retried the reading of the manifests (a lost worker) reports its lines and
    entries twice in attempted metrics: the rows, counted from the files, are all kept."""
    from nsfw_scan.pipeline import summary as summaries
    from nsfw_scan.transforms.metrics import ENTRIES, LINES

    good, broken = uploads
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("".join(f"{u}\n" for u in good + list(broken)))
    counted = summaries.counters

    def retried(results):
        c = counted(results)
        return {**c, LINES: 2 * c[LINES], ENTRIES: 2 * c[ENTRIES]}

    monkeypatch.setattr(summaries, "counters", retried)
    summary = run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    uris = good + list(broken)
    assert summary["rows"] == len(uris) and summary["accounting"]["rows"] == len(uris)
    assert f"{2 * len(uris)} read, {len(uris)} accounted for" in summary["accounting_problem"]
    assert "Every row written is kept" in summary["accounting_problem"]
    assert sorted(r["uri"] for r in pq.read_table(out).to_pylist()) == sorted(uris)
    assert summary["decisions"]["error"] == len(broken) and summary["errors_by_kind"]  # from the files
    monkeypatch.setattr(summaries, "counters", counted)
    again = run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)  # nothing was lost
    assert (again["rows"], again["already_done"], again.get("accounting_problem")) == (0, len(uris), None)


def test_urls_that_can_never_be_fetched_are_one_permanent_error(tmp_path):
    config = tmp_path / "c.yaml"  # the address guard and the backoff do not hide a retry
    config.write_text("http: {allow_networks: [127.0.0.0/8]}\nreading: {backoff_s: 0.2}\n")
    uris = ["http://127.0.0.1:9/an upload.jpg", "https://127.0.0.1:9/a\x01b.jpg", "http:///no-host.jpg",
            "s3:///no-bucket.jpg", "http://127.0.0.1:port/a.jpg"]
    manifest, out = tmp_path / "m.jsonl", tmp_path / "out"
    manifest.write_text("".join(json.dumps({"uri": u}) + "\n" for u in uris))
    summary = run(["--manifest", str(manifest), "--output", str(out), "--config", str(config)], spec=FAKE_SPEC)
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert sorted(rows) == sorted(uris) and summary["errors_by_kind"] == {"bad_uri": len(uris)}
    assert all(r["error_kind"] == "bad_uri" and "attempts" not in r["error"] for r in rows.values()), rows
    assert "contains a space at position 21" in rows[uris[0]]["error"]
    assert "no host" in rows[uris[2]]["error"] and "no bucket" in rows[uris[3]]["error"]
    from nsfw_scan.model.errors import ERROR_KINDS
    from nsfw_scan.storage.read import ReadPolicy, read_bytes

    started = time.monotonic()  # one attempt, no waiting for the next
    with pytest.raises(Exception, match="^bad_uri: "):
        read_bytes(uris[0], 1 << 20, ReadPolicy(backoff_s=1.0))
    assert time.monotonic() - started < 0.5 and "bad_uri" in ERROR_KINDS


def test_empty_and_undecodable_rows_carry_what_is_known(tmp_path, uploads):
    import hashlib

    _, broken = uploads
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(broken) + "\n")
    run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    rows = {r["error_kind"]: r for r in pq.read_table(out).to_pylist()}
    assert (rows["empty"]["bytes"], rows["empty"]["sha256"]) == (0, hashlib.sha256(b"").hexdigest())
    assert rows["undecodable"]["bytes"] > 0 and rows["truncated"]["sha256"]
    assert [r["loader"] for r in rows.values()] == [None] * len(rows)  # none was decoded


def test_a_picture_of_one_row_of_a_million_pixels_is_one_row(tmp_path, uploads):
    """A 3 KB PNG of 1,000,000 x 1 pixels (and its transpose) stopped the whole job: its hash's
    filter asked for 7.3 GiB. Now each is a scored row among the others'."""
    from PIL import Image

    good, _ = uploads
    lines = []
    for size in ((1_000_000, 1), (1, 200_000)):
        path = tmp_path / f"line-{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (220, 40, 40)).save(path)
        lines.append(str(path))
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(good + lines) + "\n")
    run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert sorted(rows) == sorted(good + lines)
    assert all(rows[uri]["error_kind"] is None and rows[uri]["pdq"] for uri in lines), [rows[u] for u in lines]
    assert (rows[lines[0]]["width"], rows[lines[0]]["height"]) == (1_000_000, 1)


def test_the_hint_to_redecide_names_the_config_the_run_had(tmp_path, uploads):
    """Earlier rows decided at other thresholds: the hint names this run's --config, and none
    where the run had none (it named a --config the run did not have)."""
    from nsfw_scan.pipeline.summary import format_summary

    good, _ = uploads
    manifest, out, policy = tmp_path / "m.txt", tmp_path / "out", tmp_path / "policy.yaml"
    policy.write_text("thresholds: {safe_below: 0.3, nsfw_from: 0.7}\n")
    manifest.write_text("\n".join(good[:2]) + "\n")
    run(["--manifest", str(manifest), "--output", str(out), "--config", str(policy)], spec=FAKE_SPEC)
    manifest.write_text("\n".join(good[:3]) + "\n")
    hint = [line for line in format_summary(run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC))
            .splitlines() if "nsfw-scan redecide" in line]
    assert hint == [f"               to decide them at these: nsfw-scan redecide {out} (the default thresholds)"]
    manifest.write_text("\n".join(good[:4]) + "\n")
    summary = run(["--manifest", str(manifest), "--output", str(out), "--config", str(policy)], spec=FAKE_SPEC)
    assert f"nsfw-scan redecide {out} --config {policy}\n" in format_summary(summary)


def test_the_readmes_way_to_read_every_run_keeps_every_column(tmp_path, uploads):
    """Two runs over manifests with different columns: the README's recipe reads every row with
    both runs' columns (``pq.read_table(DIR)`` alone keeps one file's)."""
    import pathlib
    import re
    import subprocess
    import sys

    good, _ = uploads
    out = tmp_path / "results"
    for i, column in enumerate(("ticket", "uploader")):
        manifest = tmp_path / f"m{i}.csv"
        manifest.write_text(f"uri,{column}\n{good[i]},{column}-{i}\n")
        run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    recipe = re.search(r"```python\n(import glob.*?)```", readme, re.S).group(1)
    shown = "import json; print(json.dumps(sorted(table.select(['uri', 'ticket', 'uploader']).to_pylist(), key=str)))"
    printed = subprocess.run([sys.executable, "-c", recipe + shown], cwd=tmp_path, capture_output=True, text=True,
                             check=True).stdout
    assert json.loads(printed) == [{"uri": good[0], "ticket": "ticket-0", "uploader": None},
                                   {"uri": good[1], "ticket": None, "uploader": "uploader-1"}]


class _NoModel:
    """A spec whose model cannot be loaded: the run fails inside its pipeline."""

    name, exact = "fake", True

    def expected_model_id(self) -> str:
        return FakeScorer.model_id

    def load(self):
        raise RuntimeError("no model here")


def test_a_failed_run_in_process_leaves_its_callers_processes_alone(tmp_path, uploads):
    """A run that fails stops the local runner's worker processes; a program that runs the job
    in-process (a test with its servers) keeps its own children running."""
    import subprocess
    import sys

    good, _ = uploads
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(good) + "\n")
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with pytest.raises(Exception, match="no model here"):
            run(["--manifest", str(manifest), "--output", str(tmp_path / "out")], spec=_NoModel())
        assert server.poll() is None, "the caller's own process was stopped"
    finally:
        server.kill()
        server.wait()
