"""Views: a file is scored on what a viewer sees (every frame of an animation, its EXIF
orientation, 16-bit depth scaled to 8 bits, HEIC), the row takes the highest score and never
falls below Yahoo's own view. Files are made here from corpus photos whose scores are known."""

import io
import struct
import time
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from support.corpus import COMPACT, REAL, reference
from nsfw_scan.model.preprocess import ViewPolicy, load_image
from nsfw_scan.pipeline.run import run
from nsfw_scan.transforms.results import output_schema

GENERATED = COMPACT / "generated"
ASTRONAUT = reference("real")["astronaut.png"]
ALL = ViewPolicy()


def rgb(name: str, size=(512, 512)) -> Image.Image:
    return Image.open(REAL / name).convert("RGB").resize(size, Image.Resampling.BILINEAR)


def encoded(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def still_score(scorer, image: Image.Image) -> float:
    """Yahoo's exact score of ``image`` saved as an 8-bit still PNG."""
    return float(scorer.score(load_image(encoded(image)).array[None])[0])


def apng(frames: list[Image.Image], duration=100) -> bytes:
    return encoded(frames[0], save_all=True, append_images=frames[1:], duration=duration, loop=0, disposal=0, blend=0)


def gif(frames: list[Image.Image], duration=100) -> bytes:
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)


def sideways(image: Image.Image) -> bytes:
    """``image`` stored rotated, with the orientation tag (8) that displays it upright."""
    exif = Image.Exif()
    exif[0x0112] = 8
    return encoded(image.transpose(Image.Transpose.ROTATE_270), exif=exif.tobytes())


def sixteen_bit(image: Image.Image) -> bytes:
    """``image`` as a 16-bit grayscale PNG holding the same picture as its 8-bit grayscale copy."""
    return encoded(Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257))


def corrupt_fdat(data: bytes, number: int) -> bytes:
    """The APNG ``data`` with the pixel data of its ``number``-th fdAT chunk (from 1) overwritten."""
    out, offset, seen = bytearray(data), 8, 0
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"fdAT":
            seen += 1
            if seen == number:
                start = offset + 12  # past the sequence number
                out[start:offset + 8 + length] = b"\xff" * (length - 4)
                return bytes(out)
        offset += 12 + length
    raise AssertionError("no such fdAT chunk")


def marked(image: Image.Image, i: int) -> Image.Image:
    """``image`` with one pixel changed, so that no frame equals the one before it (Pillow
    would merge equal neighbours into one)."""
    image = image.copy()
    image.putpixel((i % image.width, 0), (255 * (i % 2), 0, 0))
    return image


def frame_numbers(views) -> list[int]:
    return [int(v.name.split()[1]) for v in views[1:]]


# --- views of one file (no Beam) ----------------------------------------------------------------

def test_ordinary_still_has_yahoo_view_only():
    for name in ("astronaut.png", "grace_hopper.jpg"):
        data = (REAL / name).read_bytes()
        image = load_image(data, policy=ALL)
        assert [v.name for v in image.views] == ["yahoo"] and image.frames == 1
        np.testing.assert_array_equal(image.array, load_image(data).array)


def test_frames_sampled_over_duration_first_and_last_included():
    # 100 frames, one of them shown for 91% of the time: samples follow time, not frame numbers
    frames = [Image.new("RGB", (64, 64), (i, 255 - i, (7 * i) % 256)) for i in range(100)]
    durations = [100] * 100
    durations[50] = 100 * 1000
    data = encoded(frames[0], save_all=True, append_images=frames[1:], duration=durations, disposal=0, blend=0)
    image = load_image(data, policy=ALL)
    numbers = frame_numbers(image.views)
    assert image.frames == 100 and image.views[0].name == "yahoo"
    assert numbers[-1] == 99 and 50 in numbers
    assert len(image.views) <= ALL.max_frames
    # grid points before and after frame 50's long display land on a few frames only
    assert len([n for n in numbers if n < 50]) <= 2 and len([n for n in numbers if 50 < n < 99]) <= 1


def test_content_shown_for_a_tenth_of_the_time_is_seen_wherever_it_is():
    for first in range(0, 91, 7):
        # every frame differs from the one before (Pillow would merge equal neighbours)
        frames = [Image.new("RGB", (32, 32), (255, 255, 250 - i) if first <= i < first + 10 else (i, i, i))
                  for i in range(100)]
        image = load_image(apng(frames), policy=ALL)
        numbers = frame_numbers(image.views)
        assert image.frames == 100 and numbers[-1] == 99
        assert any(first <= n < first + 10 for n in numbers), (first, numbers)
        assert len(numbers) < ALL.max_frames


def test_thousands_of_frames_stay_within_time_and_count_bounds():
    frames = [Image.new("RGB", (48, 48), (i % 251, (7 * i) % 256, 0)) for i in range(5000)]
    data = gif(frames, duration=20)
    started = time.perf_counter()
    image = load_image(data, policy=ALL)
    seconds = time.perf_counter() - started
    assert image.frames == 5000 and 2 <= len(image.views) <= ALL.max_frames
    # frames count at least 256x256 pixels each: the last one decoded within the budget is a view
    assert frame_numbers(image.views)[-1] == -(-ALL.max_frame_pixels // (256 * 256)) - 1 < 4999
    assert seconds < 10, f"{seconds:.1f} s for 5,000 tiny frames"
    # the pixel budget stops decoding: each frame counts at least 256x256 pixels
    budget = ViewPolicy(max_frame_pixels=256 * 256 * 300)
    assert max(frame_numbers(load_image(data, policy=budget).views)) < 300


def test_frame_count_of_a_64_mib_gif_of_tiny_frames_is_bounded():
    # 1.6 million 4x4 frames, the most a file within limits.max_bytes holds: Pillow's n_frames
    # takes 15-25 s to count them here
    two = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(two, format="GIF", save_all=True, duration=20,
                                             append_images=[Image.new("RGB", (4, 4), (200, 2, 3)), Image.new("RGB", (4, 4), (1, 2, 3))])
    data = two.getvalue()
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\x21\xf9"]  # graphic control extensions
    head, pair = data[:starts[1]], data[starts[1]:-1]  # frames 1 and 2, without the trailer
    repeats = (64 << 20) // len(pair)
    data = head + pair * repeats + b"\x3b"
    started = time.perf_counter()
    image = load_image(data, policy=ALL)
    seconds = time.perf_counter() - started
    assert image.frames == 1 + 2 * repeats and len(image.views) <= ALL.max_frames
    assert seconds < 10, f"{seconds:.1f} s"


def test_gif_frame_count_agrees_with_pillow():
    from nsfw_scan.model.preprocess import gif_frame_count

    files = [p for folder in (COMPACT / "hostile",) for p in sorted(folder.rglob("*.gif"))]
    assert len(files) >= 4
    for path in files:
        try:
            with Image.open(path) as image:
                expected = image.n_frames
        except Exception:  # files Pillow cannot open are errors before any counting
            continue
        assert gif_frame_count(path.read_bytes()) == expected, path.name


def test_huge_frames_stop_at_the_pixel_budget():
    frames = [Image.new("RGB", (2000, 2000), (i * 20, 0, 0)) for i in range(12)]
    data = apng(frames)
    policy = ViewPolicy(max_frame_pixels=5 * 2000 * 2000)
    started = time.perf_counter()
    image = load_image(data, policy=policy)
    assert time.perf_counter() - started < 10
    assert image.frames == 12 and max(frame_numbers(image.views)) == 4


def test_broken_frame_data_keeps_the_frames_before_it():
    frames = [Image.new("RGB", (64, 64), (i * 4, 128, 255 - i * 4)) for i in range(60)]
    data = corrupt_fdat(apng(frames), 40)  # frame 40 (frame 0 is the IDAT)
    image = load_image(data, policy=ALL)
    assert image.frames == 60
    numbers = frame_numbers(image.views)
    assert numbers and max(numbers) < 40
    np.testing.assert_array_equal(image.array, load_image(data).array)


def test_deep_modes_scale_to_8_bits_as_shown():
    from nsfw_scan.model.preprocess import to_8bit

    values = np.arange(65536, dtype=np.uint32).reshape(256, 256)
    shown = np.rint(values * 255 / 65535)
    for image in (Image.fromarray(values.astype(np.uint16)), Image.fromarray(values.astype(np.int32), "I"),
                  Image.fromarray((values / 65535).astype(np.float32), "F")):
        converted = to_8bit(image)
        assert converted.mode == "RGB", image.mode
        np.testing.assert_array_equal(np.asarray(converted)[:, :, 1], shown, err_msg=image.mode)
    # convert("RGB") clips instead: everything above 255 is white
    assert np.asarray(Image.fromarray(values.astype(np.uint16)).convert("RGB")).mean() > 250
    stretched = np.asarray(to_8bit(Image.fromarray(values.astype(np.int32) - 40000, "I")))
    assert stretched.min() == 0 and stretched.max() == 255


def test_yahoo_policy_gives_one_view():
    data = apng([rgb("hubble_deep_field.jpg", (64, 64)), rgb("astronaut.png", (64, 64))])
    image = load_image(data, policy=ViewPolicy("yahoo"))
    assert [v.name for v in image.views] == ["yahoo"] and image.frames == 2


# --- the job: rows, their facts, real Parquet ---------------------------------------------------

@pytest.fixture(scope="module")
def cases(tmp_path_factory, scorer):
    folder = tmp_path_factory.mktemp("views")
    hubble, coffee, astronaut = rgb("hubble_deep_field.jpg"), rgb("coffee.png"), rgb("astronaut.png")
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
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(f"{folder / name}\n" for name in files))
    expected = {
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
    folder, manifest, _ = cases
    return job(folder, manifest, "all")


def test_rows_say_what_was_seen(all_views):
    summary, table, rows = all_views
    assert table.schema == output_schema({})
    assert len(rows) == 9 and summary["errors"] == 0 and summary["views"] == "all"
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
        assert abs(row["score"] - every[name]["yahoo_score"]) < 1e-6, name
        assert row["frames"] == every[name]["frames"]


def test_report_counts_rows_decided_by_other_views(all_views, cases):
    from nsfw_scan.model.decision import Thresholds
    from nsfw_scan.pipeline.report import format_report, write_report

    folder = cases[0]
    _, _, rows = all_views
    thresholds = Thresholds(safe_below=0.02, nsfw_from=0.5)
    report, png, csv = write_report(str(folder / "all"), thresholds, str(folder / "report"))
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
    facts = ("score", "frames", "views", "view", "yahoo_score")
    expected = tuple(every["late.png"][k] for k in facts)

    manifest.write_text(f"{copies[0]}\n{copies[1]}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"])
    assert summary["content_duplicates"] == 1
    rows = pq.read_table(out).to_pylist()
    assert rows[0]["score"] == rows[1]["score"] and abs(rows[0]["score"] - expected[0]) < 1e-6  # batch rounding
    assert abs(rows[0]["yahoo_score"] - expected[4]) < 1e-6
    expected = (rows[0]["score"], *expected[1:4], rows[0]["yahoo_score"])
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
    assert (row["score"], row["yahoo_score"], row["views"], row["view"]) == (
        expected[4], expected[4], 1, "yahoo")
