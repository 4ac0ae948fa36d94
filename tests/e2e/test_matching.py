"""Known content in the same pass: every decoded row carries its PDQ hash, and with a hash list
re-uploaded copies of listed pictures (resized, recompressed, rotated, inside an animation) are
matched with their label while other pictures are not. Files are made here from corpus photos."""

import csv
import gzip
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from nsfw_scan.model.decision import Thresholds
from nsfw_scan.model.errors import printable
from nsfw_scan.model.hash_list import HashListError
from nsfw_scan.model.pictures import pdq
from nsfw_scan.pipeline.hashes import hash_lines
from nsfw_scan.pipeline.report import csv_bytes, write_report
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
        "flat.png": encoded(Image.new("RGB", (300, 300), (255, 255, 255))),  # safe, its hash too poor to match
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
    assert list(listed[0]) == ["uri", "match", "match_distance", "score", "decision", "view", "pdq"]
    gif = next(line for line in listed if line["uri"].endswith("astronaut-late.gif"))
    assert (gif["view"], gif["pdq"]) == (rows["astronaut-late.gif"]["view"], rows["astronaut-late.gif"]["pdq"])
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
    # a smaller copy of a listed upload, still large enough for regions (the listed hash is the view
    # that scored highest, or the whole picture's where a region did)
    picture = Image.open(lines[0]["uri"]).convert("RGB")
    scale = max(224 / min(picture.size), 0.8)
    copy.write_bytes(encoded(picture.resize((round(picture.width * scale), round(picture.height * scale))), "JPEG",
                             quality=70))
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
    assert "5 matched" in done.stdout and "1 with a hash too poor" in done.stdout
    after = rows_of(out)
    assert {n for n, r in after.items() if r["match"]} == {"chelsea-small.jpg", "coffee-big.webp", "hubble.jpg",
                                                          "astronaut-sideways.png", "astronaut-late.gif"}
    # matched on the row's hashes: the animation's is its flagged frame's, the astronaut
    assert after["astronaut-late.gif"]["match"] == "ncii-0042" and after["astronaut-late.gif"]["match_checked"] is True
    assert [r["score"] for r in after.values()] == [r["score"] for r in before.values()]


def picture_hash(image: Image.Image) -> str:
    return pdq.hash_of(np.asarray(image)).hex


def test_a_row_s_hash_is_its_flagged_frame_s_and_hashes_lists_it(matched, uploads):
    _, rows = matched
    folder, _ = uploads
    row = rows["astronaut-late.gif"]  # Yahoo's view is Grace Hopper's frame, the astronaut frame scores highest
    shown, first = picture_hash(original("astronaut.png").resize((200, 200))), picture_hash(rgb("grace_hopper.jpg", (200, 200)))
    assert row["view"] == "frame 2" and row["score"] > row["yahoo_score"]
    assert pdq.distance(row["pdq"], shown) <= 31 < pdq.distance(row["pdq"], first)
    assert pdq.distance(row["yahoo_pdq"], first) <= 31 < pdq.distance(row["yahoo_pdq"], shown)
    for name, other in rows.items():  # a still scored on Yahoo's view: the two hashes are one
        if other["view"] == "yahoo":
            assert (other["pdq"], other["pdq_quality"]) == (other["yahoo_pdq"], other["yahoo_pdq_quality"]), name
    lines, _ = hash_lines(str(folder / "out"), row["decision"])
    assert (row["pdq"], row["decision"], row["uri"]) in lines and row["yahoo_pdq"] not in {line[0] for line in lines}


def copied(folder, tmp_path):
    """A copy of an output folder, and its one result file."""
    shutil.copytree(folder / "out", tmp_path / "out")
    (part,) = (tmp_path / "out").glob("run-*/part-*.parquet")
    return tmp_path / "out", part


def test_match_keeps_what_the_run_found_on_other_views(matched, uploads, tmp_path):
    _, before = matched
    folder, _ = uploads
    out, _ = copied(folder, tmp_path)
    coins = tmp_path / "coins.csv"
    coins.write_text(f"pdq,label\n{picture_hash(original('coins.png'))},coins-report\n")
    done = nsfw_scan("match", str(out), "--match-list", str(coins))
    assert done.returncode == 0, done.stderr
    after = rows_of(out)
    assert after["coins.png"]["match"] == "coins-report"
    assert {n: (r["match"], r["match_distance"]) for n, r in after.items() if n != "coins.png"} == {
        n: (r["match"], r["match_distance"]) for n, r in before.items() if n != "coins.png"}
    assert after["astronaut-late.gif"]["match"] == "ncii-0042"  # found on its last frame by the run


def test_match_rewrites_no_file_when_no_row_changes(matched, uploads, tmp_path):
    folder, _ = uploads
    out, part = copied(folder, tmp_path)
    written = part.stat()
    done = nsfw_scan("match", str(out), "--match-list", str(folder / "known.csv"))  # the run's own list
    assert done.returncode == 0, done.stderr
    assert "0 result files rewritten" in done.stdout and "5 matched" in done.stdout
    assert (part.stat().st_ino, part.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_match_rewrites_no_file_of_a_version_that_made_no_hashes(matched, uploads, tmp_path):
    folder, _ = uploads
    out, part = copied(folder, tmp_path)  # nothing in it can be matched, so nothing changes
    table = pq.read_table(part)
    pq.write_table(table.drop_columns([name for name in table.column_names if "pdq" in name or "match" in name]), part)
    written = part.stat()
    done = nsfw_scan("match", str(out), "--match-list", str(folder / "known.csv"))
    assert done.returncode == 0, done.stderr
    assert "8 without a hash" in done.stdout and "0 result files rewritten" in done.stdout
    assert (part.stat().st_ino, part.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_hashes_of_an_older_file_leave_out_rows_whose_flagged_view_s_hash_was_not_kept(matched, uploads, tmp_path):
    _, rows = matched
    folder, _ = uploads
    out, part = copied(folder, tmp_path)
    table = pq.read_table(part)  # as an older version wrote it: pdq was Yahoo's view's, no yahoo_pdq
    older = table.drop_columns(["pdq", "pdq_quality", "yahoo_pdq", "yahoo_pdq_quality"])
    older = older.append_column("pdq", table["yahoo_pdq"]).append_column("pdq_quality", table["yahoo_pdq_quality"])
    pq.write_table(older, part)
    lines, left_out = hash_lines(str(out), "safe")
    # (with regions, a window decides most stills: their rows are left out as well)
    expected = {r["pdq"] for r in rows.values() if r["decision"] == "safe" and r["view"] == "yahoo" and r["pdq_quality"] >= 50}
    assert {line[0] for line in lines} == expected
    late = rows["astronaut-late.gif"]
    assert late["decision"] == "safe" and late["yahoo_pdq"] not in {line[0] for line in lines}
    assert left_out["no_hash"] == sum(r["decision"] == "safe" and r["view"] != "yahoo" for r in rows.values()) > 1


def test_hashes_of_the_rows_labelled_nsfw(matched, uploads, tmp_path):
    _, rows = matched
    folder, _ = uploads
    labels = tmp_path / "labels.csv"
    labelled = {"chelsea-small.jpg": "nsfw", "astronaut-late.gif": "1", "flat.png": "NSFW", "coins.png": "safe",
                "grace_hopper.jpg": "0"}
    labels.write_text("uri,label\n" + "".join(f"{rows[n]['uri']},{label}\n" for n, label in labelled.items())
                      + f"{folder / 'never-scanned.jpg'},nsfw\n")
    listed = tmp_path / "labelled.csv"
    done = nsfw_scan("hashes", str(folder / "out"), "--labels", str(labels), "--out", str(listed))
    assert done.returncode == 0, done.stderr
    assert "2 hashes of rows labelled nsfw" in done.stdout and "1 poor hash" in done.stdout and "1 no row" in done.stdout
    with open(listed, newline="") as f:
        lines = list(csv.DictReader(f))
    assert sorted((line["pdq"], line["label"], line["uri"]) for line in lines) == sorted(
        (rows[n]["pdq"], "nsfw", rows[n]["uri"]) for n in ("chelsea-small.jpg", "astronaut-late.gif"))
    assert {rows[n]["decision"] for n in ("chelsea-small.jpg", "astronaut-late.gif")} != {"nsfw"}  # labels, not decisions
    labels.write_text("uri,label\n" + "".join(f"{rows[n]['uri']},safe\n" for n in labelled))
    done = nsfw_scan("hashes", str(folder / "out"), "--labels", str(labels))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "pdq,label,uri\n"  # none labelled nsfw: the list's header alone


def test_a_night_without_nsfw_rows_lists_a_header_that_the_next_run_takes_as_matching_nothing(matched, uploads,
                                                                                               tmp_path):
    _, rows = matched
    folder, _ = uploads
    assert "nsfw" not in {r["decision"] for r in rows.values()}  # a night with no nsfw rows
    listed = tmp_path / "tonight.csv"
    done = nsfw_scan("hashes", folder / "out", "--decision", "nsfw", "--out", listed)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 hashes of nsfw rows written") and listed.read_text() == "pdq,label,uri\n"
    manifest = tmp_path / "next-night.txt"
    manifest.write_text(f"{folder / 'chelsea-small.jpg'}\n{folder / 'coins.png'}\n")
    night = nsfw_scan("run", "--manifest", manifest, "--output", tmp_path / "out", "--match-list", listed)
    assert night.returncode == 0, night.stderr
    said = [line for line in night.stderr.splitlines() if "no hashes" in line]
    assert len(said) == 1 and f"hash list {listed} has no hashes (a header only): nothing will match it" in said[0]
    after = rows_of(tmp_path / "out")
    assert len(after) == 2 and all(r["match"] is None and r["match_checked"] is True for r in after.values())


EVIL = "takedown\x1b[2J\x1b]0;owned\x07\x00\u202eevil"  # clears the screen, retitles the terminal, reverses text


@pytest.fixture
def matched_copy(matched, uploads, tmp_path):
    """The matched run's rows, and a copy of its output folder that a test may change."""
    folder, _ = uploads
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    return matched[1], out


def test_labels_with_control_characters_are_escaped_where_printed_and_written(matched_copy, tmp_path):
    rows, out = matched_copy
    hostile = tmp_path / "hostile.csv"
    hostile.write_bytes(f"pdq,label\n{rows['coins.png']['pdq']},{EVIL}\n".encode())
    assert nsfw_scan("match", out, "--match-list", hostile).returncode == 0
    assert rows_of(out)["coins.png"]["match"] == EVIL  # the row keeps the label as listed
    shown = printable(EVIL)
    assert shown == "takedown\\x1b[2J\\x1b]0;owned\\x07\\x00\\u202eevil"
    report = nsfw_scan("report", out)
    assert report.returncode == 0, report.stderr
    assert f"{shown} 1" in report.stdout
    exported = nsfw_scan("export", out, "--csv", tmp_path / "all.csv")
    assert exported.returncode == 0, exported.stderr
    listed = nsfw_scan("hashes", out, "--decision", rows["coins.png"]["decision"], "--label", "re\x1b[31mport")
    assert listed.returncode == 0 and "re\\x1b[31mport" in listed.stdout
    texts = [report.stdout, listed.stdout, (out / "_report" / "matches.csv").read_text(), (tmp_path / "all.csv").read_text()]
    for text in texts:
        assert not any(c in text for c in "\x1b\x07\x00\u202e"), text[:300]
    assert shown in texts[2] and shown in texts[3]
    # a label with line breaks (as rows of older versions may hold) stays one line of CSV
    assert csv_bytes(pa.table({"match": ["a\nb\r\x00", None]})) == b'"match"\n"a\\nb\\r\\x00"\n\n'


def test_a_hostile_list_at_the_command_costs_one_line(matched_copy, tmp_path):
    rows, out = matched_copy
    small = tmp_path / "small.yaml"
    small.write_text("matching:\n  max_list_bytes: 1000000\n")
    bomb = tmp_path / "known.csv.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(b"pdq,label\n" + b"\n" * (16 << 20))  # 16 MiB of blank lines in 16 KiB
    refused = nsfw_scan("match", out, "--config", small, "--match-list", bomb)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert (f"{bomb}: the hash list holds more than matching.max_list_bytes (1,000,000 bytes decompressed); "
            f"split it, or raise matching.max_list_bytes") in refused.stderr
    twice = tmp_path / "twice.csv"
    coins = rows["coins.png"]["pdq"]
    twice.write_text(f"pdq,label\n{coins},coins-first\n{coins.upper()},coins-second\n{coins},coins-first\n")
    done = nsfw_scan("match", out, "--match-list", twice)
    assert done.returncode == 0, done.stderr
    (warning,) = [line for line in done.stderr.splitlines() if "different labels" in line]
    assert f"{twice}: 1 hash is listed with different labels; each keeps its first line's label: " \
           f"line 2 'coins-first', line 3 'coins-second'" in warning
    assert rows_of(out)["coins.png"]["match"] == "coins-first"
