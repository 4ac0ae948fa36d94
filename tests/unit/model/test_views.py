"""Views of one file (no Beam): a file is scored on what a viewer sees (every frame of an
animation, its EXIF orientation, 16-bit depth scaled to 8 bits), the row takes the highest
score and never falls below Yahoo's own view. The job's rows with views: tests/e2e/test_view_rows.py."""

import io
import time

import numpy as np
from PIL import Image

from nsfw_scan.model.decision import AS_PICTURE
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.views import ViewPolicy
from support.corpus import COMPACT, REAL
from support.images import apng, corrupt_fdat, encoded, gif, rgb

ALL = ViewPolicy()
WHOLE = ViewPolicy("whole")


def frame_numbers(views) -> list[int]:
    return [int(v.name.split()[1]) for v in views[1:]]


def test_ordinary_still_has_yahoo_view_only_without_regions():
    for name in ("astronaut.png", "grace_hopper.jpg"):
        data = (REAL / name).read_bytes()
        image = load_image(data, policy=WHOLE)
        assert [v.name for v in image.views] == ["yahoo"] and image.frames == 1
        np.testing.assert_array_equal(image.array, load_image(data).array)


def test_a_stills_regions_are_one_map_through_yahoos_steps_at_twice_the_size():
    """The region map: the picture resized to 480 pixels on its shorter side and, on its longer,
    480, 608 or 736 (nearest its aspect), through a JPEG round trip, less 32 pixels at each edge:
    Yahoo's steps at nearly twice the size. Each 224-pixel window in it, every 32 pixels, is a
    region, named by its box in the picture's pixels."""
    rng = np.random.default_rng(3)
    for size, resized in (((800, 600), (608, 480)), ((600, 800), (480, 608)), ((1600, 900), (736, 480)),
                          ((500, 480), (480, 480)), ((3000, 600), (736, 480))):
        picture = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
        for loader in ("yahoo", "fast"):
            image = load_image(encoded(picture, "PNG"), loader, policy=ALL)
            assert [v.name for v in image.views] == ["yahoo", "regions"]
            yahoo, regions = image.views
            assert (yahoo.counts, regions.counts) == (AS_PICTURE, ALL.region_thresholds)
            assert yahoo.pdq is not None and regions.pdq is None
            assert regions.windows.resized == resized and regions.pixels.shape == (resized[1] - 64, resized[0] - 64, 3)
            columns, rows = ((side - 64 - 224) // 32 + 1 for side in resized)
            assert regions.windows.count == rows * columns and image.scored == 1 + rows * columns
            buffer = io.BytesIO()
            picture.resize(resized, Image.Resampling.BILINEAR).save(buffer, "JPEG")
            expected = np.asarray(Image.open(buffer))[32:-32, 32:-32, ::-1]
            np.testing.assert_array_equal(regions.pixels, expected)
            np.testing.assert_array_equal(yahoo.pixels, load_image(encoded(picture, "PNG")).views[0].pixels)
    assert ALL.region_thresholds.safe_below > AS_PICTURE.safe_below


def test_a_regions_name_is_its_windows_box_in_the_pictures_pixels():
    windows = load_image(encoded(Image.new("RGB", (1216, 960)), "PNG"), policy=ALL).views[1].windows
    assert windows.resized == (608, 480)  # half the picture's size
    # the first window: pixels 32 to 256 of the map's 608 x 480, in the picture's 1216 x 960
    assert windows.name((0, 0)) == "region 64,64,512,512"
    # the last: 10 and 6 windows on, 32 pixels each
    assert windows.name((6, 10)) == "region 704,448,1152,896"
    assert windows.count == 11 * 7


def test_regions_only_for_stills_large_enough():
    small = Image.fromarray(np.random.default_rng(4).integers(0, 256, (63, 900, 3), np.uint8))
    assert [v.name for v in load_image(encoded(small, "PNG"), policy=ALL).views] == ["yahoo"]
    strip = load_image(encoded(small, "PNG"), policy=ViewPolicy(region_min_side=63))
    assert [v.name for v in strip.views] == ["yahoo", "regions"]
    assert strip.views[1].windows.resized == (736, 480)  # upscaled: a thin strip is seen too
    frames = [Image.new("RGB", (500, 500), (i * 40, 0, 0)) for i in range(3)]
    animated = load_image(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), policy=ALL)
    assert not [v for v in animated.views if v.windows] and len(animated.views) == 3


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
    from nsfw_scan.model.pictures.preprocess import gif_frame_count

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
    from nsfw_scan.model.pictures.preprocess import to_8bit

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
