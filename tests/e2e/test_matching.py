"""Known content in the same pass: every decoded row carries its PDQ hash, and with a hash list
re-uploaded copies of listed pictures (resized, recompressed, rotated, inside an animation) are
matched with their label while other pictures are not. Files are made here from corpus photos."""

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from nsfw_scan.model import pdq
from nsfw_scan.model.decision import Thresholds
from nsfw_scan.model.hash_list import HashListError
from nsfw_scan.pipeline.report import write_report
from nsfw_scan.pipeline.run import run
from support.cli import nsfw_scan
from support.corpus import REAL
from support.images import encoded, gif, rgb, sideways

LISTED = {"chelsea.png": "cat-takedown", "coffee.png": "cup-report", "astronaut.png": "ncii-0042",
          "hubble_deep_field.jpg": '=HYPERLINK("http://x")'}


def original(name: str) -> Image.Image:
    return Image.open(REAL / name).convert("RGB")


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matching")
    chelsea, coffee, astronaut, _ = (original(name) for name in LISTED)
    files = {
        "chelsea-small.jpg": encoded(chelsea.resize((300, 200), Image.Resampling.BICUBIC), "JPEG", quality=60),
        "coffee-big.webp": encoded(coffee.resize((1500, 1000), Image.Resampling.LANCZOS), "WEBP", quality=70),
        "astronaut-sideways.png": sideways(astronaut.resize((400, 400))),
        "astronaut-late.gif": gif([rgb("grace_hopper.jpg", (200, 200)), rgb("coins.png", (200, 200)),
                                   astronaut.resize((200, 200))]),
        "coins.png": (REAL / "coins.png").read_bytes(),
        "hubble.jpg": (REAL / "hubble_deep_field.jpg").read_bytes(),
        "grace_hopper.jpg": (REAL / "grace_hopper.jpg").read_bytes(),
        "flat.png": encoded(Image.new("RGB", (300, 300), (90, 120, 200))),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(f"{folder / name}\n" for name in files) + "not a uri at all\n")
    rng = np.random.default_rng(7)
    with open(folder / "known.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "pdq", "label"])
        for i in range(3000):  # unrelated listed hashes
            writer.writerow(["other", rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex(), f"other-{i}"])
        for name, label in LISTED.items():
            writer.writerow(["ours", pdq.hash_of(np.asarray(original(name))).hex.upper(), label])
    return folder, manifest


def rows_of(output) -> dict[str, dict]:
    return {(r["uri"] or "").rsplit("/", 1)[-1]: r for r in pq.read_table(output).to_pylist()}


@pytest.fixture(scope="module")
def matched(uploads):
    folder, manifest = uploads
    summary = run(["--manifest", str(manifest), "--output", str(folder / "out"), "--match-list", str(folder / "known.csv")])
    return summary, rows_of(folder / "out")


def test_copies_of_listed_pictures_are_matched_with_their_label(matched):
    _, rows = matched
    expected = {"chelsea-small.jpg": "cat-takedown", "coffee-big.webp": "cup-report",
                "astronaut-sideways.png": "ncii-0042", "astronaut-late.gif": "ncii-0042",
                "hubble.jpg": LISTED["hubble_deep_field.jpg"]}
    for name, label in expected.items():
        row = rows[name]
        assert row["match"] == label, (name, row["match"], row["match_distance"])
        assert 0 <= row["match_distance"] <= 31
        assert row["match_checked"] is True
    # the animation's first frame is Yahoo's view and the row's hash; its last frame matched
    assert rows["astronaut-late.gif"]["view"].startswith("frame")


def test_other_pictures_are_not_matched_and_poor_hashes_are_not_trusted(matched):
    _, rows = matched
    for name in ("coins.png", "grace_hopper.jpg"):
        assert rows[name]["match"] is None and rows[name]["match_distance"] is None
        assert rows[name]["match_checked"] is True
    flat = rows["flat.png"]
    assert flat["pdq_quality"] < 50 and flat["match_checked"] is False and flat["match"] is None


def test_every_decoded_row_has_a_hash_and_the_match_does_not_change_the_decision(matched, uploads):
    _, rows = matched
    for name, row in rows.items():
        if row["score"] is None:
            assert row["pdq"] is None and row["match_checked"] is None, name
            continue
        assert len(row["pdq"]) == 64 and int(row["pdq"], 16) >= 0, name
        assert 0 <= row["pdq_quality"] <= 100
    folder, manifest = uploads
    run(["--manifest", str(manifest), "--output", str(folder / "plain")])
    plain = rows_of(folder / "plain")
    assert {n: r["decision"] for n, r in plain.items()} == {n: r["decision"] for n, r in rows.items()}
    assert {n: r["pdq"] for n, r in plain.items()} == {n: r["pdq"] for n, r in rows.items()}
    assert all(r["match_checked"] is None and r["match"] is None for r in plain.values())


@pytest.mark.parametrize("content, line, words", [
    ("pdq,label\n" + "ab" * 32 + ",ok\n" + "ab" * 31 + ",short\n", 3, "not 64 hex digits"),
    ("pdq,label\n" + "zz" * 32 + ",bad\n", 2, "not 64 hex digits"),
    ("hash,label\n" + "ab" * 32 + ",x\n", 1, "no column 'pdq'"),
    ("pdq,label\n" + "ab" * 32 + ",\n", 2, "label"),
])
def test_a_bad_list_stops_the_job_before_it_starts_naming_the_line(tmp_path, uploads, content, line, words):
    _, manifest = uploads
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(HashListError, match=f"bad.csv line {line}: .*{words}"):
        run(["--manifest", str(manifest), "--output", str(tmp_path / "out"), "--match-list", str(bad)])
    assert not (tmp_path / "out").exists()


def test_scores_reused_by_content_are_matched_on_their_hash(tmp_path, uploads):
    folder, _ = uploads
    names = ["chelsea-small.jpg", "coins.png", "flat.png"]
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("".join(f"{folder / name}\n" for name in names))
    copies = tmp_path / "copies"
    copies.mkdir()
    for name in names:  # the same bytes at other URIs, twice each
        for n in (1, 2):
            (copies / f"{n}-{name}").write_bytes((folder / name).read_bytes())
    second.write_text("".join(f"{copies / f'{n}-{name}'}\n" for name in names for n in (1, 2)))
    out = tmp_path / "out"
    run(["--manifest", str(first), "--output", str(out), "--content-dedup"])
    summary = run(["--manifest", str(second), "--output", str(out), "--content-dedup",
                   "--match-list", str(folder / "known.csv")])
    assert summary["content_reused"] == 6 and summary["matched"] == 2 and summary["not_matchable"] == 2
    rows = {name: row for name, row in rows_of(out).items() if name[0] in "12"}
    for n in (1, 2):
        assert rows[f"{n}-chelsea-small.jpg"]["match"] == "cat-takedown"
        assert rows[f"{n}-coins.png"]["match"] is None and rows[f"{n}-coins.png"]["match_checked"] is True
        assert rows[f"{n}-flat.png"]["match_checked"] is False


def test_the_report_lists_the_matches_spreadsheet_safe(matched, uploads):
    summary, rows = matched
    folder, _ = uploads
    assert summary["matched"] == 5 and summary["not_matchable"] == 1
    report, _, _ = write_report(str(folder / "out"), Thresholds())
    with open(folder / "out" / "_report" / "matches.csv", newline="") as f:
        listed = list(csv.DictReader(f))
    assert [line["uri"].rsplit("/", 1)[-1] for line in listed] == [
        row["uri"].rsplit("/", 1)[-1] for row in sorted((r for r in rows.values() if r["match"]),
                                                        key=lambda r: (r["match_distance"], r["uri"]))]
    assert list(listed[0]) == ["uri", "match", "match_distance", "score", "decision"]
    formula = next(line for line in listed if line["uri"].endswith("hubble.jpg"))
    assert formula["match"] == "'" + LISTED["hubble_deep_field.jpg"]
    assert report["matches"].num_rows == 5


def test_hashes_out_make_a_list_that_matches_the_next_run(matched, uploads, tmp_path):
    _, rows = matched
    folder, _ = uploads
    listed = tmp_path / "confirmed.csv"
    done = nsfw_scan("hashes", str(folder / "out"), "--decision", "safe", "--label", "confirmed", "--out", str(listed))
    assert done.returncode == 0, done.stderr
    assert "hashes of safe rows written" in done.stdout and "left out" in done.stdout  # flat.png's poor hash
    with open(listed, newline="") as f:
        lines = list(csv.DictReader(f))
    expected = {r["pdq"] for r in rows.values() if r["decision"] == "safe" and r["pdq_quality"] >= 50}
    assert expected and {line["pdq"] for line in lines} == expected
    assert {line["label"] for line in lines} == {"confirmed"} and list(lines[0]) == ["pdq", "label", "uri"]
    copy = tmp_path / "again.png"
    copy.write_bytes(encoded(Image.open(folder / "coins.png").convert("RGB").resize((200, 158)), "JPEG", quality=70))
    scored = nsfw_scan("score", str(copy), "--match-list", str(listed))
    assert scored.returncode == 0, scored.stderr
    assert '"match": "confirmed"' in scored.stdout


def test_match_applies_a_list_to_rows_already_written(uploads, tmp_path):
    folder, manifest = uploads
    out = tmp_path / "out"
    run(["--manifest", str(manifest), "--output", str(out)])
    again = run(["--manifest", str(manifest), "--output", str(out), "--match-list", str(folder / "known.csv")])
    assert again["already_done"] == 9 and again["matched"] == 0
    before = rows_of(out)
    assert all(r["match_checked"] is None for r in before.values())
    done = nsfw_scan("match", str(out), "--match-list", str(folder / "known.csv"))
    assert done.returncode == 0, done.stderr
    assert "4 matched" in done.stdout and "1 with a hash too poor" in done.stdout
    after = rows_of(out)
    assert {n for n, r in after.items() if r["match"]} == {"chelsea-small.jpg", "coffee-big.webp", "hubble.jpg",
                                                          "astronaut-sideways.png"}
    # matched on the row's own hash: the animation's later frame is not at hand
    assert after["astronaut-late.gif"]["match"] is None and after["astronaut-late.gif"]["match_checked"] is True
    assert [r["score"] for r in after.values()] == [r["score"] for r in before.values()]
