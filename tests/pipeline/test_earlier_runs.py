"""Earlier runs in the output folder (fake scorer): the resume join, reruns with
``--rescore-errors`` and ``--force``, and content joins that share and reuse scores."""

import shutil

import pyarrow.parquet as pq
import pytest
from apache_beam import Create, Map
from apache_beam.testing.util import assert_that, equal_to

from nsfw_scan.pipeline.run import run
from nsfw_scan.transforms.dedup import NewEntries
from nsfw_scan.transforms.elements import bad_line_key
from nsfw_scan.transforms.manifest_plan import plan_manifests
from nsfw_scan.transforms.manifests import ReadManifests
from support.fake_scorer import FAKE_SPEC, expected_score
from support.images import png
from support.jobs import pipeline


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


def test_content_joins_share_and_reuse_scores(tmp_path, uploads):
    good, _ = uploads
    copies = []
    for i in range(3):  # one upload under three names
        copies.append(str(tmp_path / f"copy{i}.png"))
        shutil.copy(good[2], copies[-1])
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(copies + [good[0]]) + "\n")
    first = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"], spec=FAKE_SPEC)
    assert first["content_duplicates"] == 2 and first["scored"] == 4 and first["model_loads"] == 1
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert len({rows[c]["score"] for c in copies}) == 1
    assert rows[copies[0]]["score"] == pytest.approx(expected_score(good[2]))

    later = str(tmp_path / "copy-late.png")  # the next night: known bytes under a new name
    shutil.copy(good[2], later)
    manifest.write_text(f"{later}\n{good[1]}\n")
    second = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"], spec=FAKE_SPEC)
    assert second["content_reused"] == 1 and second["scored"] == 2 and second["already_done"] == 0
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert rows[later]["score"] == rows[copies[0]]["score"] and len(rows) == 6


def test_reruns_resume_rescore_errors_and_force(tmp_path, uploads):
    good, broken = uploads
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    missing = str(tmp_path / "late.png")
    manifest.write_text("\n".join(good[:3] + [missing]) + "\n")
    assert run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)["errors"] == 1
    manifest.write_text("\n".join(good + [missing]) + "\n")
    grown = run(["--manifest", str(manifest), "--output", str(out)], spec=FAKE_SPEC)
    assert grown["already_done"] == 4 and grown["scored"] == 2 and grown["errors"] == 0
    png(missing, (30, 30, 30))  # the upload arrives
    again = run(["--manifest", str(manifest), "--output", str(out), "--rescore-errors"], spec=FAKE_SPEC)
    assert again["scored"] == 1 and again["already_done"] == 5
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 6 and all(r["error"] is None for r in rows)
    forced = run(["--manifest", str(manifest), "--output", str(out), "--force"], spec=FAKE_SPEC)
    assert forced["scored"] == 6 and len(list(out.glob("run-*"))) == 1
