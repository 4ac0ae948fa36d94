"""Videos in the job: one row per file, scored on the frames a viewer sees, batched with the
stills; broken, empty and fake videos are rows with an error kind. Clips are made here."""

import pyarrow.parquet as pq
import pytest

from nsfw_scan.pipeline.run import run
from support.clips import audio_only, clip, flagged
from support.images import encoded, rgb

pytest.importorskip("av", reason="videos need the video extra (PyAV)")


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    safe = rgb("coffee.png", (320, 240))
    pictures = [rgb(name, (320, 240)) for name in ("coffee.png", "chelsea.png", "astronaut.png", "coins.png")] * 2
    files = {
        "flagged-at-6s.mp4": clip([flagged() if k == 6 else safe for k in range(10)]),
        "flagged-last.webm": clip([safe] * 7 + [flagged()], codec="libvpx-vp9", fmt="webm"),
        "safe.mov": clip([safe] * 5, fmt="mov"),
        "cut.webm": clip(pictures, codec="libvpx-vp9", fmt="webm")[:15000],
        "header-only.mp4": clip([safe] * 3)[:100],
        "empty.mp4": b"",
        "notes.mp4": b"this is not a video\n" * 10,
        "audio.m4a": audio_only(),
        "still.jpg": encoded(safe, "JPEG"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(f"{folder / name}\n" for name in files))
    summary = run(["--manifest", str(manifest), "--output", str(folder / "out")])
    table = pq.read_table(folder / "out")
    assert table.num_rows == len(files) and summary["rows"] == len(files)
    return {r["uri"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}


def seconds_of(view: str) -> float:
    return float(view.removeprefix("frame at ").removesuffix(" s"))


def test_a_second_of_flagged_content_decides_the_clip(rows):
    for name, second in (("flagged-at-6s.mp4", 6), ("flagged-last.webm", 7)):
        row = rows[name]
        assert row["decision"] == "nsfw" and row["score"] >= 0.8, name
        assert second <= seconds_of(row["view"]) < second + 1
        assert row["yahoo_score"] < 0.2  # the first frame's
        assert row["frames"] == {"flagged-at-6s.mp4": 50, "flagged-last.webm": 40}[name]  # 5 a second
        assert row["views"] == {"flagged-at-6s.mp4": 11, "flagged-last.webm": 9}[name]  # each second's, the last
        assert row["pdq"] and row["width"] == 160


def test_a_safe_clip_is_safe_and_stills_score_beside_clips(rows):
    assert rows["safe.mov"]["decision"] == "safe" and rows["safe.mov"]["views"] >= 5
    assert rows["still.jpg"]["decision"] == "safe" and rows["still.jpg"]["view"] == "yahoo"


def test_broken_empty_and_fake_videos_are_error_rows(rows):
    assert rows["cut.webm"]["decision"] in ("safe", "review", "nsfw") and 1 <= rows["cut.webm"]["views"] < 8
    assert rows["header-only.mp4"]["error_kind"] in ("undecodable", "truncated")
    assert rows["empty.mp4"]["error_kind"] == "empty"
    assert rows["notes.mp4"]["error_kind"] == "undecodable"
    assert rows["audio.m4a"]["error_kind"] == "no_video"
