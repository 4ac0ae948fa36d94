"""Videos in the job: one row per file, scored on the frames a viewer sees, batched with the
stills; broken, empty and fake videos are rows with an error kind. Clips are made here."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from nsfw_scan.model.pictures import pdq
from nsfw_scan.model.pictures.views import ViewPolicy
from nsfw_scan.pipeline.run import run
from support.clips import audio_only, clip, declaring, flagged, mjpeg, two_streams
from support.images import encoded, rgb

pytest.importorskip("av", reason="videos need the video extra (PyAV)")


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    safe = rgb("coffee.png", (320, 240))
    pictures = [rgb(name, (320, 240)) for name in ("coffee.png", "chelsea.png", "astronaut.png", "coins.png")] * 2
    cat = rgb("chelsea.png", (320, 240))
    middling = framed(cat, flagged(), 0.9)  # a picture the model scores between 0.2 and 0.7
    files = {
        "middling-second.mp4": clip([cat, cat, middling, cat]),
        "middling.png": encoded(middling),
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


def framed(scene, content, share):
    """``content`` over the middle ``share`` of ``scene``'s width and height."""
    scene, width, height = scene.copy(), round(scene.width * share), round(scene.height * share)
    scene.paste(content.resize((width, height)), ((scene.width - width) // 2, (scene.height - height) // 2))
    return scene


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


def test_a_clip_s_hash_is_its_flagged_second_s(rows):
    """``pdq`` is the hash of the frame that gave the score, ``yahoo_pdq`` the first frame's."""
    shown = {name: pdq.hash_of(np.asarray(picture.resize((160, 120), Image.Resampling.BILINEAR))).hex
             for name, picture in (("flagged", flagged()), ("safe", rgb("coffee.png", (320, 240))))}
    for name in ("flagged-at-6s.mp4", "flagged-last.webm"):
        row = rows[name]
        assert pdq.distance(row["pdq"], shown["flagged"]) <= 31 < pdq.distance(row["pdq"], shown["safe"]), name
        assert pdq.distance(row["yahoo_pdq"], shown["safe"]) <= 31 < pdq.distance(row["yahoo_pdq"], shown["flagged"])


def test_a_frame_a_picture_would_send_to_review_leaves_a_clip_safe(rows):
    """A clip's frames after the first are decided at the video's own thresholds (0.7 and 0.8):
    one second that would make a picture ``review`` is one of many chances in a clip, and the
    clip stays safe; the same picture as a still is ``review``."""
    own = ViewPolicy().clip_thresholds
    still, row = rows["middling.png"], rows["middling-second.mp4"]
    assert 0.2 <= still["score"] < own.safe_below and still["decision"] == "review"
    assert 2 <= seconds_of(row["view"]) < 3
    assert 0.2 <= row["view_score"] < own.safe_below, "the middling second should score as a picture in review"
    assert row["score"] == pytest.approx(own.counted(row["view_score"]), abs=1e-6) and row["score"] < 0.2
    assert row["decision"] == "safe" and row["safe_below"] == 0.2


def test_a_safe_clip_is_safe_and_stills_score_beside_clips(rows):
    assert rows["safe.mov"]["decision"] == "safe" and rows["safe.mov"]["views"] >= 5
    assert rows["still.jpg"]["decision"] == "safe" and rows["still.jpg"]["views"] > 50  # Yahoo's view and its region map's windows


def test_broken_empty_and_fake_videos_are_error_rows(rows):
    assert rows["cut.webm"]["decision"] in ("safe", "review", "nsfw") and 1 <= rows["cut.webm"]["views"] < 8
    assert rows["header-only.mp4"]["error_kind"] in ("undecodable", "truncated")
    assert rows["empty.mp4"]["error_kind"] == "empty"
    assert rows["notes.mp4"]["error_kind"] == "undecodable"
    assert rows["audio.m4a"]["error_kind"] == "no_video"


def test_clips_that_lie_about_themselves_are_one_row_each(tmp_path):
    safe, tiny = rgb("coffee.png", (96, 72)), rgb("coffee.png", (32, 24))
    webm = dict(fps=2, size=(96, 72), codec="libvpx-vp9", fmt="webm")
    files = {
        "claims-3s.webm": declaring(clip([flagged() if k == 12 else safe for k in range(20)], **webm), 3),
        "claims-1e15ms.webm": declaring(clip([safe] * 20, **webm), 1e12),
        "no-duration.webm": declaring(clip([safe] * 20, **webm), None),
        "6000x6000-in-64x64.avi": mjpeg([Image.new("RGB", (64, 64), "gray"), Image.new("RGB", (6000, 6000), "gray")]),
        "one-keyframe.mp4": clip([tiny, rgb("chelsea.png", (32, 24))] * 200, fps=5, size=(32, 24), keyframe_every=100_000),
        "second-stream-shown.mp4": two_streams(safe, flagged(), size=(160, 120)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    manifest, config = tmp_path / "manifest.txt", tmp_path / "limits.yaml"
    manifest.write_text("".join(f"{tmp_path / name}\n" for name in files))
    config.write_text("limits:\n  max_pixels: 16000000\n")
    summary = run(["--manifest", str(manifest), "--output", str(tmp_path / "out"), "--config", str(config)])
    rows = {r["uri"].rsplit("/", 1)[-1]: r for r in pq.read_table(tmp_path / "out").to_pylist()}
    assert len(rows) == summary["rows"] == len(files)
    assert rows["claims-3s.webm"]["decision"] == "nsfw" and 12 <= seconds_of(rows["claims-3s.webm"]["view"]) < 13
    assert rows["claims-1e15ms.webm"]["frames"] == 40 and rows["no-duration.webm"]["views"] == 21
    assert rows["6000x6000-in-64x64.avi"]["error_kind"] == "decompression_bomb"
    assert rows["one-keyframe.mp4"]["views"] >= 290 and rows["one-keyframe.mp4"]["frames"] == 2000
    assert rows["second-stream-shown.mp4"]["decision"] == "nsfw"
