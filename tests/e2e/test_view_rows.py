"""Views in the job's rows: a file is scored on what a viewer sees (every frame of an
animation, its EXIF orientation, 16-bit depth scaled to 8 bits, HEIC), the row takes the highest
score and never falls below Yahoo's own view. Files are made here from corpus photos whose
scores are known."""

import io

import pyarrow.parquet as pq
import pytest
from PIL import Image

from nsfw_scan.model.pictures.preprocess import RegionMap, load_image, region_map_size
from nsfw_scan.model.pictures.views import ViewPolicy
from nsfw_scan.pipeline.config import Cascade
from nsfw_scan.pipeline.run import run
from nsfw_scan.storage.schema import output_schema
from support.clips import FLAGGED_IN_SCENE, flagged
from support.corpus import COMPACT, REAL, reference
from support.images import apng, corrupt_fdat, encoded, gif, marked, rgb, sideways, sixteen_bit, still_score, with_inset

GENERATED = COMPACT / "generated"
ASTRONAUT = reference("real")["astronaut.png"]
INSET = (440, 290, 760, 610)  # where inset.jpg shows flagged content, in its 1200 x 900 pixels


@pytest.fixture(scope="module")
def cases(tmp_path_factory, scorer):
    folder = tmp_path_factory.mktemp("views")
    hubble, coffee = rgb("hubble_deep_field.jpg"), rgb("coffee.png")
    small = [rgb("hubble_deep_field.jpg", (128, 128)), rgb("astronaut.png", (128, 128))]
    tenth = gif([marked(small[1] if 45 <= i < 55 else small[0], i) for i in range(100)])
    with Image.open(io.BytesIO(tenth)) as shown:
        shown.seek(50)
        astronaut_frame = shown.convert("RGB")
    files = {
        "late.png": apng([hubble, coffee, Image.open(REAL / "astronaut.png").convert("RGB")]),
        "tenth.gif": tenth,
        "sideways.png": sideways(Image.open(REAL / "astronaut.png")),
        "deep.png": sixteen_bit(Image.open(REAL / "astronaut.png")),
        "astronaut.heic": (GENERATED / "astronaut.heic").read_bytes(),
        "hubble_then_astronaut.heic": (GENERATED / "hubble_then_astronaut.heic").read_bytes(),
        "astronaut.png": (REAL / "astronaut.png").read_bytes(),
        "many.gif": gif([Image.new("RGB", (32, 32), (i % 251, 0, 0)) for i in range(3000)], duration=30),
        "broken40.png": corrupt_fdat(apng([Image.new("RGB", (64, 64), (i * 4, 0, 0)) for i in range(60)]), 40),
        "inset.jpg": encoded(with_inset(rgb("coffee.png", (1200, 900)), flagged(FLAGGED_IN_SCENE), INSET), "JPEG"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(f"{folder / name}\n" for name in files))
    expected = {
        "inset's region": scorer.score_views([view.pixels for view in load_image(
            files["inset.jpg"], policy=ViewPolicy()).views])[1],
        "hubble": still_score(scorer, hubble),
        "gif first": still_score(scorer, Image.open(io.BytesIO(tenth)).convert("RGB")),
        "gif astronaut": still_score(scorer, astronaut_frame),
        "gray 8-bit": still_score(scorer, Image.open(REAL / "astronaut.png").convert("L")),
    }
    return folder, manifest, expected


def job(folder, manifest, name, *flags):
    output = folder / name
    summary = run(["--manifest", str(manifest), "--output", str(output), *flags])
    table = pq.read_table(output)
    rows = {r["uri"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}
    return summary, table, rows


@pytest.fixture(scope="module")
def all_views(cases):
    """Every view of the whole picture (``--views whole``): what each scores, no region above it."""
    folder, manifest, _ = cases
    return job(folder, manifest, "all", "--views", "whole")


@pytest.fixture(scope="module")
def with_regions(cases):
    """The default views: the whole picture's and a still's regions."""
    folder, manifest, _ = cases
    return job(folder, manifest, "regions")


def test_rows_say_what_was_seen(all_views):
    summary, table, rows = all_views
    assert table.schema == output_schema({})
    assert len(rows) == 10 and summary["errors"] == 0 and summary["views"] == "whole"
    facts = {name: (r["frames"], r["views"], r["view"]) for name, r in rows.items()}
    assert facts["late.png"] == (3, 3, "frame 2")
    assert facts["sideways.png"] == (1, 2, "exif-rotated")
    assert facts["deep.png"] == (1, 2, "8-bit from 16-bit")
    assert facts["astronaut.heic"] == (1, 1, "yahoo")
    assert facts["hubble_then_astronaut.heic"] == (2, 2, "frame 1")
    assert facts["astronaut.png"] == (1, 1, "yahoo")
    assert facts["many.gif"][0] == 3000 and 2 <= facts["many.gif"][1] <= 22
    assert facts["broken40.png"][0] == 60 and 2 <= facts["broken40.png"][1] < 40
    for name, row in rows.items():
        # Yahoo's view decides unless another scores strictly higher (ties go to the earlier view)
        if row["view"] == "yahoo":
            assert row["score"] == row["yahoo_score"], name
        else:
            assert row["score"] > row["yahoo_score"], name


def test_stills_add_their_regions_others_do_not(with_regions, all_views):
    """Stills of 64 pixels a side or more add their region map's windows to their views;
    animations, HEIC sequences and small stills do not; Yahoo's view scores as without them."""
    _, _, rows = with_regions
    _, _, whole = all_views
    for name, row in rows.items():
        size = (row["width"], row["height"])
        gets = row["frames"] == 1 and min(size) >= ViewPolicy().region_min_side
        regions = RegionMap(size, region_map_size(*size)).count if gets else 0
        assert row["views"] == whole[name]["views"] + regions, name
        # a still with regions is decoded whole by the first pass too (without: at reduced scale)
        assert abs(row["yahoo_score"] - whole[name]["yahoo_score"]) < 0.025, name
        assert row["score"] >= whole[name]["yahoo_score"] - 0.025, name


def test_a_region_sees_an_inset_yahoos_view_misses(with_regions, all_views, cases):
    """Flagged content shown at about a third of a photo's side: Yahoo's view scores it safe,
    the region map's window over it flags it, and the row is nsfw, decided at the regions' own
    thresholds, naming that window; without regions, the row is Yahoo's view's."""
    score, window = cases[2]["inset's region"]
    row = with_regions[2]["inset.jpg"]
    own = ViewPolicy().region_thresholds
    assert row["yahoo_score"] < 0.2 and row["views"] == 1 + 7 * 11  # 1200 x 900: a 608 x 480 map
    assert row["view"] == RegionMap((1200, 900), (608, 480)).name(window)
    left, top, right, bottom = map(int, row["view"].split()[1].split(","))
    assert left < INSET[2] and INSET[0] < right and top < INSET[3] and INSET[1] < bottom
    # the exact steps' score, or the first pass's within its margin
    assert abs(row["view_score"] - score) < (1e-3 if row["exact"] else Cascade().margin) and row["view_score"] >= own.nsfw_from
    assert row["score"] == pytest.approx(own.counted(row["view_score"]), abs=1e-6) and row["decision"] == "nsfw"
    _, _, whole = all_views
    assert (whole["inset.jpg"]["views"], whole["inset.jpg"]["view"]) == (1, "yahoo")
    assert whole["inset.jpg"]["decision"] == "safe"
    for name, row in whole.items():
        assert not row["view"].startswith("region"), name
        assert row["view_score"] == row["score"], name


def test_later_frame_scores_the_animation(all_views, cases):
    _, _, rows = all_views
    expected = cases[2]
    late = rows["late.png"]
    assert abs(late["score"] - ASTRONAUT) < 1e-3  # the last frame is the astronaut photo itself
    assert abs(late["yahoo_score"] - expected["hubble"]) < 1e-3 and late["yahoo_score"] < late["score"] - 0.02
    tenth = rows["tenth.gif"]  # the astronaut shown for 10% of the time, in the middle
    assert 45 <= int(tenth["view"].split()[1]) < 55
    assert abs(tenth["score"] - expected["gif astronaut"]) < 1e-3
    assert abs(tenth["yahoo_score"] - expected["gif first"]) < 1e-3 and tenth["yahoo_score"] < tenth["score"] - 1e-3


def test_orientation_and_depth_score_what_a_viewer_sees(all_views, cases):
    _, _, rows = all_views
    side, deep = rows["sideways.png"], rows["deep.png"]
    assert abs(side["score"] - ASTRONAUT) < 1e-3 and side["yahoo_score"] < ASTRONAUT - 5e-3
    assert abs(deep["score"] - cases[2]["gray 8-bit"]) < 1e-3 and deep["yahoo_score"] < deep["score"] - 0.01
    assert side["decision"] == deep["decision"] == "safe"


def test_heic_scores_close_to_the_same_picture(all_views):
    _, _, rows = all_views
    heic, both = rows["astronaut.heic"], rows["hubble_then_astronaut.heic"]
    assert abs(heic["score"] - ASTRONAUT) < 5e-3 and heic["width"] == heic["height"] == 512
    assert abs(both["score"] - heic["score"]) < 1e-3 and both["yahoo_score"] < 1e-3
    still = rows["astronaut.png"]
    assert abs(still["score"] - ASTRONAUT) < 1e-3 and still["score"] == still["yahoo_score"]


def test_views_yahoo_scores_yahoo_view_only(all_views, cases):
    folder, manifest, _ = cases
    _, _, every = all_views
    summary, _, rows = job(folder, manifest, "yahoo", "--views", "yahoo")
    assert summary["views"] == "yahoo"
    for name, row in rows.items():
        assert (row["views"], row["view"]) == (1, "yahoo"), name
        assert row["score"] == row["yahoo_score"]
        # either row may be the first pass's (bfloat16) or the exact steps' (a file with a view near
        # a threshold is scored again): within the first pass's bound, half the margin
        assert abs(row["score"] - every[name]["yahoo_score"]) <= Cascade().margin / 2, name
        assert row["frames"] == every[name]["frames"]


def test_report_counts_rows_decided_by_other_views(cases):
    from nsfw_scan.model.decision import Thresholds
    from nsfw_scan.pipeline.report import format_report, write_report

    folder, manifest, _ = cases
    thresholds = Thresholds(safe_below=0.02, nsfw_from=0.5)
    policy = folder / "policy.yaml"
    policy.write_text("thresholds:\n  safe_below: 0.02\n  nsfw_from: 0.5\n")
    _, _, rows = job(folder, manifest, "policy", "--config", str(policy), "--views", "whole")  # decided at these
    # the report counts each row at the thresholds it was decided at (the default pair stands in only
    # for rows that recorded none)
    report, png, csv = write_report(str(folder / "policy"), Thresholds(), str(folder / "report"))
    assert report["decided_at"] == {"0.02/0.5": len(rows)}
    assert report["other_views"]["exif-rotated"] == 1 and report["other_views"]["8-bit from 16-bit"] == 1
    frames = [n for n, r in rows.items() if r["view"].startswith("frame ")]
    assert {"late.png", "tenth.gif", "hubble_then_astronaut.heic"} <= set(frames)
    assert report["other_views"]["frame"] == len(frames)
    # late.png, sideways.png and deep.png go from safe to review at these thresholds
    raised = {n for n, r in rows.items() if thresholds.decide(r["yahoo_score"]) != thresholds.decide(r["score"])}
    assert {"late.png", "sideways.png", "deep.png"} <= raised and report["raised"] == len(raised)
    text = format_report(report, png, csv)
    assert (f"decided by a view other than Yahoo's: {len(frames) + 2} (frame {len(frames)}, 8-bit from 16-bit 1, "
            f"exif-rotated 1); decision above Yahoo's view's: {len(raised)}") in text


def test_content_dedup_shares_and_reuses_view_facts(cases, all_views, tmp_path):
    folder = cases[0]
    _, _, every = all_views
    late = (folder / "late.png").read_bytes()
    copies = [tmp_path / f"copy_{i}.png" for i in range(3)]
    for path in copies:
        path.write_bytes(late)
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    facts = ("score", "frames", "views", "view", "yahoo_score", "pdq", "yahoo_pdq")
    expected = tuple(every["late.png"][k] for k in facts)
    assert expected[5] != expected[6]  # the flagged frame's hash (the astronaut's), and Yahoo's frame's

    manifest.write_text(f"{copies[0]}\n{copies[1]}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"])
    assert summary["content_duplicates"] == 1
    rows = pq.read_table(out).to_pylist()
    assert rows[0]["score"] == rows[1]["score"] and abs(rows[0]["score"] - expected[0]) < 1e-6  # batch rounding
    assert abs(rows[0]["yahoo_score"] - expected[4]) < 1e-6
    expected = (rows[0]["score"], *expected[1:4], rows[0]["yahoo_score"], *expected[5:])
    assert [tuple(r[k] for k in facts) for r in rows] == [expected] * 2

    # a later run reuses the score of the same bytes with the facts of the views that gave it;
    # a run with --views yahoo reuses Yahoo's view's score of them
    manifest.write_text(f"{copies[2]}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"])
    assert summary["content_reused"] == 1
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert tuple(rows[str(copies[2])][k] for k in facts) == expected
    again = tmp_path / "again.png"
    again.write_bytes(late)
    manifest.write_text(f"{again}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup", "--views", "yahoo"])
    assert summary["content_reused"] == 1
    row = {r["uri"]: r for r in pq.read_table(out).to_pylist()}[str(again)]
    assert (row["score"], row["yahoo_score"], row["views"], row["view"], row["pdq"], row["yahoo_pdq"]) == (
        expected[4], expected[4], 1, "yahoo", expected[6], expected[6])
