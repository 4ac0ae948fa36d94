"""Videos are scored on what a viewer sees over their whole duration: clips made here from a
safe photo and a picture the model flags (``support.clips``), through the loader and the model."""

import numpy as np
import pytest
from PIL import Image

from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.video import sample_times
from nsfw_scan.model.pictures.views import ViewPolicy
from support.clips import audio_only, clip, declaring, flagged, mjpeg, two_streams
from support.images import rgb

pytest.importorskip("av", reason="videos need the video extra (PyAV)")

SAFE = rgb("coffee.png", (320, 240))


def scored(data: bytes, policy=ViewPolicy(), scorer=None):
    image = load_image(data, "yahoo", policy=policy)
    scores = scorer.score(np.stack([view.array for view in image.views]))
    return image, [(view.name, float(score)) for view, score in zip(image.views, scores)]


def seconds_of(name: str) -> float:
    assert name.startswith("frame at ") and name.endswith(" s"), name
    return float(name[len("frame at "):-2])


@pytest.mark.parametrize("where, length", [("middle", 9), ("last second", 9), ("long clip", 300)])
def test_a_picture_shown_for_one_second_is_seen(scorer, where, length):
    second = {"middle": 4, "last second": length - 1, "long clip": 211}[where]
    fps, size = (5, (160, 120)) if length < 60 else (2, (96, 72))
    data = clip([flagged() if k == second else SAFE for k in range(length)], fps=fps, size=size)
    image, views = scored(data, scorer=scorer)
    name, best = max(views, key=lambda view: view[1])
    assert best >= 0.8, views
    assert second <= seconds_of(name) < second + 1
    assert views[0][0] == "frame at 0.0 s" and views[0][1] < 0.2  # Yahoo's view: the first frame
    assert image.frames == length * fps
    assert len(views) == length + 1 or len(views) == length  # a frame per second, and the last


def test_a_safe_clip_stays_safe(scorer):
    _, views = scored(clip([SAFE] * 6, codec="libvpx-vp9", fmt="webm"), scorer=scorer)
    assert max(score for _, score in views) < 0.2 and len(views) >= 6


@pytest.mark.parametrize("codec, fmt", [("libx264", "mov"), ("mpeg4", "avi"), ("libvpx-vp9", "matroska")])
def test_common_containers_decode(codec, fmt):
    image = load_image(clip([SAFE, SAFE, SAFE], codec=codec, fmt=fmt), policy=ViewPolicy())
    assert [view.name for view in image.views][:3] == ["frame at 0.0 s", "frame at 1.0 s", "frame at 2.0 s"]
    assert (image.width, image.height) == (160, 120) and all(view.pdq for view in image.views)


def test_a_phone_clip_is_turned_as_players_turn_it():
    upright = rgb("grace_hopper.jpg", (120, 160))
    # stored sideways, with the display rotation that shows it upright
    data = clip([upright.rotate(-90, expand=True)] * 2, size=(160, 120), rotation=90)
    first = load_image(data, policy=ViewPolicy()).views[0]
    expected = load_image(clip([upright] * 2, size=(120, 160))).views[0]
    assert np.abs(first.pixels.astype(int) - expected.pixels.astype(int)).mean() < 12


def test_yahoo_views_take_the_first_frame_only():
    image = load_image(clip([SAFE, flagged(), SAFE]), policy=ViewPolicy("yahoo"))
    assert [view.name for view in image.views] == ["frame at 0.0 s"]


def test_a_long_video_is_sampled_evenly_within_the_budget():
    data = clip([SAFE, rgb("chelsea.png")] * 600, fps=1, size=(64, 48))  # 20 minutes, a frame a second
    image = load_image(data, policy=ViewPolicy(video_max_frames=31))
    times = [seconds_of(view.name) for view in image.views]
    assert len(times) == 31 and times[0] == 0.0 and times[-1] >= 1190
    assert all(35 <= b - a <= 45 for a, b in zip(times, times[1:]))  # 1199 s / 30


def test_a_ten_hour_video_is_one_row_of_evenly_spread_frames():
    from fractions import Fraction

    data = clip([SAFE, rgb("chelsea.png")] * 300, fps=Fraction(1, 60), size=(64, 48))  # a frame a minute
    image = load_image(data, policy=ViewPolicy())
    times = [seconds_of(view.name) for view in image.views]
    assert image.frames == 600 and 290 <= len(times) <= 301
    assert times[0] == 0.0 and times[-1] == 35940.0  # the last frame, shown from 9 h 59 min


def test_a_4k_clip_is_scored_within_the_limits():
    data = clip([SAFE, SAFE], fps=2, size=(3840, 2160))
    image = load_image(data, policy=ViewPolicy())
    assert (image.width, image.height) == (3840, 2160) and len(image.views) == 3
    from nsfw_scan.model.errors import Unscorable

    with pytest.raises(Unscorable, match="decompression_bomb"):
        load_image(data, max_pixels=3840 * 2000, policy=ViewPolicy())


def test_a_broken_frame_keeps_the_frames_before_it():
    pictures = [rgb(name, (320, 240)) for name in ("coffee.png", "chelsea.png", "astronaut.png", "coins.png")] * 2
    data = bytearray(clip(pictures, codec="libvpx-vp9", fmt="webm"))
    middle = len(data) * 2 // 3
    data[middle:middle + 400] = bytes(400)  # a run of zeros inside a frame
    image = load_image(bytes(data), policy=ViewPolicy())
    assert 1 <= len(image.views) <= 9 and image.views[0].name == "frame at 0.0 s"


def test_the_pixel_budget_stops_decoding_and_keeps_the_frames_before():
    data = clip([SAFE] * 20, fps=5, size=(160, 120))
    image = load_image(data, policy=ViewPolicy(video_max_pixels=160 * 120 * 27))
    # 26 frames decoded (0 s to 5.2 s at 5 a second): the whole seconds, and the last frame decoded
    assert [view.name for view in image.views] == [f"frame at {k}.0 s" for k in range(6)] + ["frame at 5.2 s"]


@pytest.mark.parametrize("case, kinds", [
    ("mp4 cut in half", {"undecodable"}),  # its index (moov) is at the end: nothing to go by
    ("streamable mp4 cut in half", {None}),
    ("webm cut in half", {None}),
    ("cut in its header", {"undecodable", "truncated"}),
    ("no video stream", {"no_video"}),
    ("text named .mp4", {"undecodable"}),
    ("a codec FFmpeg does not know", {"undecodable"}),
])
def test_broken_files_give_frames_or_an_error_kind(case, kinds):
    from nsfw_scan.model.errors import Unscorable

    pictures = [rgb(name, (320, 240)) for name in ("coffee.png", "chelsea.png", "astronaut.png", "coins.png")] * 2
    whole = clip(pictures)
    streamable, webm = clip(pictures, faststart=True), clip(pictures, codec="libvpx-vp9", fmt="webm")
    data = {"mp4 cut in half": whole[:len(whole) // 2], "cut in its header": whole[:200],
            "streamable mp4 cut in half": streamable[:len(streamable) // 2], "webm cut in half": webm[:len(webm) // 2],
            "no video stream": audio_only(), "text named .mp4": b"just some text\n" * 20,
            "a codec FFmpeg does not know": clip(pictures, codec="mpeg4", fmt="avi").replace(b"FMP4", b"QQQQ")}[case]
    try:
        image = load_image(data, policy=ViewPolicy())
    except Unscorable as exc:
        assert exc.kind in kinds, exc
        return
    assert None in kinds and 2 <= len(image.views) < 8  # the frames before the cut


def test_without_pyav_a_video_names_the_extra(monkeypatch):
    import sys

    from nsfw_scan.model.errors import Unscorable

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(Unscorable, match=r"unsupported_format: .*nsfw-scan\[video\]"):
        load_image(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)


def test_sampling_a_second_apart_up_to_the_cap_then_evenly():
    assert sample_times(9.5, 301) == ([float(k) for k in range(10)], True)
    times, grid = sample_times(600.0, 301)
    assert not grid and len(times) == 301 and times[0] == 0 and times[-1] == 600.0


@pytest.mark.parametrize("claim, policy", [(3, ViewPolicy()), (1e5, ViewPolicy()), (None, ViewPolicy(video_max_frames=11))])
def test_a_clip_is_sampled_over_its_frames_whatever_duration_it_claims(scorer, claim, policy):
    # 20 s, flagged from 12 s to 13 s; the header says 3 s, 100000 s, or nothing
    pictures = [flagged() if k == 12 else SAFE for k in range(20)]
    data = declaring(clip(pictures, fps=2, size=(96, 72), codec="libvpx-vp9", fmt="webm"), claim)
    image, views = scored(data, policy=policy, scorer=scorer)
    name, best = max(views, key=lambda view: view[1])
    assert best >= 0.8 and 12 <= seconds_of(name) < 13, views
    assert len(views) == (21 if claim else 11) and views[-1][0] == "frame at 19.5 s"  # the last frame
    assert image.frames == 40


def test_a_clip_claiming_1e15_ms_counts_its_own_frames():
    data = declaring(clip([SAFE] * 4, fps=2, size=(64, 48), codec="libvpx-vp9", fmt="webm"), 1e12)
    image = load_image(data, policy=ViewPolicy())
    assert image.frames == 8 and [view.name for view in image.views][-1] == "frame at 3.5 s"


def test_a_frame_larger_than_its_header_says_is_a_bomb():
    from nsfw_scan.model.errors import Unscorable

    data = mjpeg([Image.new("RGB", (64, 64), "gray"), Image.new("RGB", (6000, 6000), "gray")], header=(64, 64))
    with pytest.raises(Unscorable, match=r"decompression_bomb: the frame at 1.0 s is 6000x6000"):
        load_image(data, max_pixels=4000 * 4000, policy=ViewPolicy())
    assert len(load_image(data, policy=ViewPolicy()).views) == 2  # within the limit: both frames


def test_a_long_clip_with_one_keyframe_decodes_each_frame_once():
    # 400 s, 5 frames a second, a single keyframe: each sample reached by decoding on, not by
    # seeking back to the one keyframe
    data = clip([SAFE, rgb("chelsea.png")] * 200, fps=5, size=(32, 24), keyframe_every=100_000)
    decodes = 2000 * 5 // 4  # a quarter more than the clip's 2000 frames
    image = load_image(data, policy=ViewPolicy(video_max_pixels=decodes * 128 * 128))
    times = [seconds_of(view.name) for view in image.views]
    assert image.frames == 2000 and len(times) >= 290 and times[-1] == 399.8


def test_tiny_frames_cost_the_budget_as_much_as_128x128_ones():
    data = clip([SAFE] * 60, fps=5, size=(32, 24))
    image = load_image(data, policy=ViewPolicy(video_max_pixels=100 * 128 * 128))  # 100 frames (20 s)
    assert [view.name for view in image.views] == [f"frame at {k}.0 s" for k in range(20)] + ["frame at 19.8 s"]


def test_the_stream_players_show_is_the_one_scored():
    data = two_streams(Image.new("RGB", (64, 48), "black"), Image.new("RGB", (64, 48), "white"))  # the 2nd: default
    image = load_image(data, policy=ViewPolicy())
    assert len(image.views) == 2 and all(view.pixels.mean() > 200 for view in image.views)


def test_a_frame_stamped_far_past_the_others_does_not_hide_them(scorer):
    # 20 s of frames, flagged from 12 s to 13 s, and the last frame stamped at 100000 s
    pictures = [flagged() if k == 12 else SAFE for k in range(20)]
    data = clip(pictures, fps=2, size=(96, 72), codec="libvpx-vp9", fmt="webm", last_at=1e5)
    image, views = scored(data, scorer=scorer)
    name, best = max(views, key=lambda view: view[1])
    assert best >= 0.8 and 12 <= seconds_of(name) < 13, views
    assert views[-1][0] == "frame at 100000.0 s" and len(views) == 21
