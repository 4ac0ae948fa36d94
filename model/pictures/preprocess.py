"""Image bytes -> the network's input: float32 ``[224, 224, 3]``, BGR, mean-subtracted.

Loaders (selected by name):

``yahoo`` (default)
    Yahoo's ``classify_nsfw.py`` step for step: PIL open -> ``convert("RGB")`` when the mode
    differs -> resize to 256x256 BILINEAR -> save as JPEG with PIL's defaults -> reopen -> crop
    ``[16:240, 16:240]`` -> RGB->BGR -> subtract (104, 117, 123). Scores match the reference.
    Animated images score their first frame; EXIF orientation is ignored, as in Yahoo's code.
    With a :class:`ViewPolicy` of ``views="all"`` the same file also yields the other *views*
    a viewer sees (see :func:`views_of`), each through the same steps.
``fast`` (opt-in)
    Yahoo's steps, except that JPEGs larger than needed are decoded by libjpeg at 1/2, 1/4 or
    1/8 scale (Pillow's ``draft``), never below 256x256, before the same resize (not those
    that get regions: see ``_pil_views``). Much less
    decoding work for photos; scores deviate slightly (measured in docs/cascade.md). The
    cascade's first pass.
``tensorflow``
    The same steps with TensorFlow's decoders, resizer and JPEG encoder (the seed port's
    in-graph path, also used by the SavedModel export). Formats: JPEG, PNG, GIF, BMP, WebP.

Pillow's formats, and HEIC/HEIF through the ``pi-heif`` plugin (registered where images are
opened); several images in one HEIC are frames like an animation's.

Every failure is an :class:`Unscorable` with a ``kind``; nothing here lets a bad file escape as
another exception. Limits (bytes, pixels) come from the caller, not from Pillow's globals: the
pixel count is checked from the header, before any decoding. Truncated files are errors (Pillow's
``LOAD_TRUNCATED_IMAGES`` stays off). PostScript/EPS is refused: Pillow would hand it to
Ghostscript, an interpreter, and uploads are untrusted.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import pi_heif
from PIL import Image, ImageOps

from ..decision import OwnThresholds
from ..errors import Unscorable, describe
from ..scorer import INPUT_SHAPE, WINDOW_STRIDE, windows_per_side
from .signatures import is_image, is_video, signature_of
from .views import REGION_PREFIX, REGIONS_VIEW, YAHOO_ONLY, YAHOO_VIEW, ViewPolicy
from .yahoo_steps import (
    AS_DISPLAYED,
    CROP,
    MEAN_BGR,
    OFFSET,
    ORIENTATION_TAG,
    RESIZE,
    Preprocessed,
    View,
    finish,
    hash_as_displayed,
    jpeg_round_trip,
    resize,
)

# Pillow raises DecompressionBombError above twice its MAX_IMAGE_PIXELS; the same default here.
DEFAULT_MAX_PIXELS = 2 * 89_478_485


# A still's regions: its region map is the picture resized to REGION_MAP_SHORT pixels on its
# shorter side and one of REGION_MAP_LONGS on its longer (the nearest to its own aspect), through
# a JPEG round trip, less REGION_MAP_BORDER pixels at every edge (as Yahoo's view is 256 pixels
# less 16 at every edge, at nearly twice the size); each 224-pixel window in it, every 32
# pixels, is a region (``model.network``): 7x7 windows on a square picture, each about 47% of its side.
REGION_MAP_SHORT = 480
REGION_MAP_LONGS = (480, 608, 736)
REGION_MAP_BORDER = 32
# 16- and 32-bit modes, which convert("RGB") clips instead of scaling
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# Browsers show GIF frames with a delay of 10 ms or less (or none) for 100 ms.
_SHORTEST_FRAME_MS, _DEFAULT_FRAME_MS = 10, 100




# Pillow decodes PostScript by running Ghostscript on it: never for untrusted uploads.
REFUSED_FORMATS = {"EPS": "PostScript/EPS is not decoded (it would run Ghostscript on the upload)"}
_POSTSCRIPT_MAGIC = (b"%!PS", b"\xc5\xd0\xd3\xc6")
_formats: tuple[str, ...] | None = None


def _allowed_formats() -> tuple[str, ...]:
    global _formats
    if _formats is None:
        Image.init()
        # HEIC/HEIF (phones' default) through pi-heif, the decode-only build of pillow-heif
        pi_heif.register_heif_opener()
        _formats = tuple(f for f in Image.OPEN if f not in REFUSED_FORMATS)
    return _formats


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """The upload opened by Pillow (header only), its format one Pillow may decode here and its
    size within ``max_pixels``; failures are :class:`Unscorable`."""
    if not data:
        raise Unscorable("empty", "the file has no bytes")
    if data.startswith(_POSTSCRIPT_MAGIC):
        raise Unscorable("unsupported_format", REFUSED_FORMATS["EPS"])
    with warnings.catch_warnings():
        # Pillow warns (does not fail) between MAX_IMAGE_PIXELS and twice that, and about odd
        # headers; the explicit pixel check below decides instead.
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data), formats=_allowed_formats())
        except Image.DecompressionBombError as exc:
            raise Unscorable("decompression_bomb", str(exc)) from None
        except Image.UnidentifiedImageError:
            raise Unscorable("undecodable", _unidentified(data)) from None
        except Exception as exc:  # Pillow's plugins raise many types for garbage input
            raise Unscorable("undecodable", describe(exc)) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise Unscorable("undecodable", f"image has size {width}x{height}")
    if width * height > max_pixels:
        raise Unscorable(
            "decompression_bomb", f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
        )
    return image


def _unidentified(data: bytes) -> str:
    """Why Pillow found no format: a file that starts like a known one is damaged (or cut before
    its header ends), anything else is not an image Pillow reads."""
    what = signature_of(data[:64])
    if what is not None and is_image(what):
        return f"starts like {what} but Pillow cannot read it: the file is damaged or cut short"
    if what is not None:
        return f"is {what}, not an image"
    return "not an image format Pillow can read"


def image_format(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The format (Pillow's name, e.g. ``JPEG``, ``HEIF``) of an image, from its header."""
    return open_image(data, max_pixels).format


def _decode_rgb(image: Image.Image, draft: bool = False) -> Image.Image:
    """The decoded RGB image (Yahoo's: the first frame, as stored, ``convert("RGB")``); with
    ``draft``, a JPEG decoded at reduced scale, no smaller than the resize."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if draft and image.format == "JPEG":
                # let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the 256x256 resize
                image.draft("RGB", (RESIZE, RESIZE))
            image.load()
            if image.mode != "RGB":
                image = image.convert("RGB")
    except Unscorable:
        raise
    except MemoryError:
        raise Unscorable("too_large", "not enough memory to decode the image") from None
    except Exception as exc:
        message = describe(exc)
        kind = "truncated" if "truncated" in message or isinstance(exc, EOFError) else "undecodable"
        raise Unscorable(kind, message) from None
    return image


def yahoo_array(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, policy: ViewPolicy = YAHOO_ONLY) -> Preprocessed:
    """Yahoo's exact preprocessing (and, with ``policy``, the file's other views)."""
    return _pil_views(data, max_pixels, policy, draft=False)


def fast_array(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, policy: ViewPolicy = YAHOO_ONLY) -> Preprocessed:
    """Yahoo's steps, but large JPEGs are decoded at reduced scale (libjpeg's DCT scaling)."""
    return _pil_views(data, max_pixels, policy, draft=True)


def _pil_views(data: bytes, max_pixels: int, policy: ViewPolicy, draft: bool) -> Preprocessed:
    image = open_image(data, max_pixels)
    width, height = image.size
    stored_mode = image.mode
    regions = policy.gets_regions(width, height)
    # a still with regions is decoded whole by every loader: regions cut from a reduced decode
    # scored up to 0.09 from the exact ones (docs/cascade.md), more than the cascade's margin
    decoded = _decode_rgb(image, draft and not regions)
    resized = resize(decoded)
    displayed = hash_as_displayed(resized, decoded.size, (width, height), _orientation(image))
    views = [View(YAHOO_VIEW, finish(resized), displayed)]
    frames = _frame_count(image, data)
    regions = policy.gets_regions(width, height, frames)
    if policy.views != YAHOO_VIEW:
        views += views_of(image, stored_mode, frames, max_pixels, policy)
    if regions:
        views.append(region_map_view(decoded, (width, height), policy.region_thresholds))
    return Preprocessed(tuple(views), width, height, frames)


@dataclasses.dataclass(frozen=True)
class RegionMap:
    """Where a region map's windows lie in its picture: ``size``, the picture's (width, height);
    ``resized``, the map's size before its border is cut."""

    size: tuple[int, int]
    resized: tuple[int, int]

    @property
    def count(self) -> int:
        """Its windows: each is scored as a view."""
        columns, rows = (windows_per_side(side - 2 * REGION_MAP_BORDER) for side in self.resized)
        return rows * columns

    def name(self, window: tuple[int, int]) -> str:
        """The view name of the window at (row, column), its box in the picture's pixels:
        ``region 64,64,512,512`` (left, top, right, bottom)."""
        (width, height), (map_width, map_height) = self.size, self.resized
        row, column = window
        left, top = REGION_MAP_BORDER + column * WINDOW_STRIDE, REGION_MAP_BORDER + row * WINDOW_STRIDE
        side = INPUT_SHAPE[0]
        box = (round(left * width / map_width), round(top * height / map_height),
               round((left + side) * width / map_width), round((top + side) * height / map_height))
        return REGION_PREFIX + ",".join(map(str, box))


SQUARE_MAP = RegionMap((1, 1), (REGION_MAP_SHORT, REGION_MAP_SHORT))  # the fewest windows a map has


def region_map_size(width: int, height: int) -> tuple[int, int]:
    """The size a picture is resized to for its region map: ``REGION_MAP_SHORT`` on its shorter
    side, the one of ``REGION_MAP_LONGS`` nearest its aspect (by ratio) on its longer."""
    aspect = max(width, height) / min(width, height)
    long = min(REGION_MAP_LONGS, key=lambda side: abs(np.log(side / REGION_MAP_SHORT / aspect)))
    return (long, REGION_MAP_SHORT) if width >= height else (REGION_MAP_SHORT, long)


def region_map_view(decoded: Image.Image, size: tuple[int, int], counts: OwnThresholds) -> View:
    """A still's region map as one view (``REGIONS_VIEW``): ``decoded`` (the picture of ``size``)
    resized (:func:`region_map_size`), through a JPEG round trip with PIL's defaults, less its
    border, BGR. The model scores every window in it as a region, each as if it were a view of
    its own (``model.engines.TensorFlowScorer.score_windows``); the view has no hash of its own."""
    resized_size = region_map_size(*size)
    resized = decoded.resize(resized_size, resample=Image.Resampling.BILINEAR)
    return View(REGIONS_VIEW, jpeg_round_trip(resized, REGION_MAP_BORDER), None, counts,
                RegionMap(size, resized_size))


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag's value (1, as stored, when missing or unreadable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
        except Exception:  # a broken EXIF block: shown as stored
            return 1
    return orientation if isinstance(orientation, int) and orientation in AS_DISPLAYED else 1


def _frame_count(image: Image.Image, data: bytes) -> int:
    """Frames (or images) in the file: from the header where the format has it (APNG, WebP,
    MPO, HEIF), and for GIF from its block structure (Pillow's ``n_frames`` parses every frame
    in Python: 15-25 s for the 1.6 million frames a 64 MiB GIF can hold, against about 1 s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if image.format == "GIF":
                return max(1, gif_frame_count(data))
            return max(1, int(getattr(image, "n_frames", 1)))
        except Exception:  # a frame count that cannot be read: Yahoo's frame is the one known
            return 1


def gif_frame_count(data: bytes) -> int:
    """Image descriptors in a GIF, walking its blocks (header, colour tables, extensions and
    data sub-blocks) up to the trailer or the end of the data."""
    if len(data) < 13:
        return 0
    position = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames, end = 0, len(data)
    while position < end:
        introducer = data[position]
        if introducer == 0x3B:  # trailer
            break
        if introducer == 0x21:  # extension: label, then sub-blocks
            position += 2
        elif introducer == 0x2C:  # image descriptor, optional local colour table, LZW code size
            if position + 10 > end:
                break
            packed = data[position + 9]
            position += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0) + 1
            frames += 1
        else:  # a stray byte between blocks: skipped, as Pillow does
            position += 1
            continue
        while position < end:  # sub-blocks, up to the empty one
            size = data[position]
            position += size + 1
            if size == 0:
                break
    return frames


# --- views beyond Yahoo's ---------------------------------------------------------------------

def views_of(image: Image.Image, stored_mode: str, frames: int, max_pixels: int, policy: ViewPolicy) -> list[View]:
    """The views of an opened image other than Yahoo's (whose frame 0 is already loaded):

    - an animation's (or multi-page file's) frames as displayed (Pillow composites GIF and
      APNG disposal), sampled evenly over its duration, the first and the last frame included,
      ``policy.max_frames`` at most (Yahoo's view counts as the first) and decoded one at a
      time within ``policy.max_frame_pixels``;
    - a still image as displayed: EXIF-transposed when its orientation tag says so, and 16- and
      32-bit images scaled to 8 bits (see :func:`to_8bit`) instead of clipped.

    A frame that cannot be decoded ends the frames (the row keeps the views before it); nothing
    here raises."""
    with warnings.catch_warnings():  # Pillow's warnings about odd metadata: the outcome decides
        warnings.simplefilter("ignore")
        try:
            if frames > 1:
                return _frame_views(image, frames, max_pixels, policy)
            return _still_view(image, stored_mode)
        except Exception:  # a broken later part of the file: Yahoo's view stands
            return []


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit image as a viewer shows it, as 8-bit RGB: ``I;16*`` (and ``I`` whose values
    fit in 16 bits) scaled by 255/65535, rounded; ``F`` in [0, 1] scaled by 255; ``I`` and ``F``
    within [0, 255] as they are; anything else stretched from its minimum to its maximum.
    Temporaries take 4 bytes per pixel at most."""
    values = np.asarray(image)
    if values.size == 0:
        return image.convert("RGB")
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
        # round(v * 255 / 65535) in integers (never a tie: 65535 is odd)
        scaled = (values.astype(np.uint32) * 255 + 32767) // 65535
    else:
        values = values.astype(np.float32, copy=False)
        if image.mode == "F" and low >= 0 and high <= 1.0:
            scaled = np.rint(values * 255)
        elif low >= 0 and high <= 255:
            scaled = np.rint(values)
        elif high > low:
            scaled = np.rint((values - low) * np.float32(255 / (high - low)))
        else:
            scaled = np.zeros_like(values)
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L").convert("RGB")


def displayed_rgb(image: Image.Image) -> Image.Image:
    return to_8bit(image) if image.mode in HIGH_DEPTH_MODES else image.convert("RGB")


def _still_view(image: Image.Image, stored_mode: str) -> list[View]:
    rotated = _orientation(image) != 1
    deep = stored_mode in HIGH_DEPTH_MODES
    if not (rotated or deep):
        return []
    changes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        picture = image
        if rotated:
            picture = ImageOps.exif_transpose(image)
            changes.append("exif-rotated")
        if deep:
            changes.append("8-bit from 16-bit" if _fits_16(image) else "8-bit from 32-bit")
        picture = displayed_rgb(picture)
    resized = resize(picture)
    return [View(", ".join(changes), finish(resized), hash_as_displayed(resized, picture.size, picture.size))]


def _fits_16(image: Image.Image) -> bool:
    if image.mode.startswith("I;16"):
        return True
    low, high = image.getextrema()
    return image.mode == "I" and low >= 0 and high <= 65535


def _frame_views(image: Image.Image, frames: int, max_pixels: int, policy: ViewPolicy) -> list[View]:
    """One pass over the frames, each decoded once (compositing needs the ones before it).
    Samples fall on a grid of times ``k * step``: when more than ``max_frames - 1`` grid points
    have been passed, the step doubles and every other sample is dropped, so at most
    ``max_frames`` resized frames are held at once and the final step is under twice the
    duration divided by ``max_frames - 2``. The last frame decoded is always a view."""
    grid_points = max(1, policy.max_frames - 1)
    step = float(_DEFAULT_FRAME_MS)
    samples: dict[int, tuple[int, Image.Image, tuple[int, int]]] = {}  # grid index -> (frame, resized RGB, size)
    start = 0.0
    spent = 0
    last, broken = None, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index in range(frames):
            if index:
                try:
                    image.seek(index)
                    image.load()
                except Exception:  # broken frame data: the frames before it stand
                    broken = True
                    break
            width, height = image.size
            if width * height > max_pixels:
                broken = True
                break
            spent += max(width * height, RESIZE * RESIZE)
            duration = image.info.get("duration")
            duration = float(duration) if isinstance(duration, (int, float)) and duration > _SHORTEST_FRAME_MS                 else float(_DEFAULT_FRAME_MS)
            end = start + duration
            # grid points k * step in [start, end) are shown by this frame
            first_k, k = int(np.ceil(start / step)), None
            resized = None
            for k in range(first_k, int(np.ceil(end / step))):
                if k not in samples:
                    if resized is None:
                        resized = resize(displayed_rgb(image))
                    samples[k] = (index, resized, image.size)
            while len(samples) > grid_points:
                step *= 2
                samples = {k // 2: v for k, v in samples.items() if k % 2 == 0}
            last = index
            start = end
            if spent >= policy.max_frame_pixels:
                break
        if not broken and last is not None and last > 0 and last not in {f for f, _, _ in samples.values()}:
            samples[max(samples, default=0) + 1] = (last, resize(displayed_rgb(image)), image.size)
    chosen = sorted({frame: (resized, size) for frame, resized, size in samples.values()}.items())
    return [View(f"frame {frame}", finish(resized), hash_as_displayed(resized, size, size))
            for frame, (resized, size) in chosen if frame > 0]


# --- TensorFlow loader ------------------------------------------------------------------------

def tf_preprocess(data):
    """TensorFlow ops only: encoded image bytes (scalar tf.string) -> [224, 224, 3] float32.

    Usable inside a graph (``tf.map_fn`` over a batch in the SavedModel export)."""
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (RESIZE, RESIZE), method="bilinear", antialias=False)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    encoded = tf.io.encode_jpeg(image, quality=75, chroma_downsampling=True)
    image = tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")
    image = tf.cast(image[OFFSET:OFFSET + CROP, OFFSET:OFFSET + CROP, :], tf.float32)
    return tf.reverse(image, axis=[-1]) - tf.constant(MEAN_BGR)


_tf_single = None


def tensorflow_array(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, policy: ViewPolicy = YAHOO_ONLY) -> Preprocessed:
    """The TensorFlow loader for one file; the header is checked with Pillow for size limits.
    One view (its decoders' first frame, as stored) whatever ``policy`` says."""
    global _tf_single
    import tensorflow as tf

    width, height = open_image(data, max_pixels).size  # header only: size and bomb check
    if _tf_single is None:
        _tf_single = tf.function(tf_preprocess, input_signature=[tf.TensorSpec([], tf.string)])
    try:
        array = _tf_single(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        raise Unscorable("undecodable", (exc.message or type(exc).__name__).splitlines()[0]) from None
    # the ops' values are whole numbers of 0-255 less the mean: back to the view's uint8 exactly
    return Preprocessed((View(YAHOO_VIEW, np.rint(array + MEAN_BGR).astype(np.uint8)),), width, height)


LOADERS = {"yahoo": yahoo_array, "fast": fast_array, "tensorflow": tensorflow_array}
EXACT_LOADER = "yahoo"  # the loader whose scores are the reference


def load_image(data: bytes, loader: str = EXACT_LOADER, max_pixels: int = DEFAULT_MAX_PIXELS,
               policy: ViewPolicy = YAHOO_ONLY) -> Preprocessed:
    """``data`` preprocessed by ``loader``: Yahoo's view, then (``policy.views == "all"``) the
    others. A video file, whatever the loader, is its sampled frames (``model.pictures.video``)."""
    try:
        fn = LOADERS[loader]
    except KeyError:
        raise ValueError(f"unknown loader {loader!r}; choose one of {sorted(LOADERS)}") from None
    what = signature_of(data[:64])
    if what is not None and is_video(what):
        from .video import video_views

        return video_views(data, max_pixels, policy)
    return fn(data, max_pixels, policy)
