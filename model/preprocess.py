"""Image bytes -> the network's input: float32 ``[224, 224, 3]``, BGR, mean-subtracted.

Loaders (selected by name):

``yahoo`` (default)
    Yahoo's ``classify_nsfw.py`` step for step: PIL open -> ``convert("RGB")`` when the mode
    differs -> resize to 256x256 BILINEAR -> save as JPEG with PIL's defaults -> reopen -> crop
    ``[16:240, 16:240]`` -> RGB->BGR -> subtract (104, 117, 123). Scores match the reference.
    Animated images score their first frame; EXIF orientation is ignored, as in Yahoo's code.
``fast`` (opt-in)
    Yahoo's steps, except that JPEGs larger than needed are decoded by libjpeg at 1/2, 1/4 or
    1/8 scale (Pillow's ``draft``), never below 256x256, before the same resize. Much less
    decoding work for photos; scores deviate slightly (measured in the README).
``tensorflow``
    The same steps with TensorFlow's decoders, resizer and JPEG encoder (the seed port's
    in-graph path, also used by the SavedModel export). Formats: JPEG, PNG, GIF, BMP, WebP.

Every failure is an :class:`ImageError` with a ``kind``; nothing here lets a bad file escape as
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
from PIL import Image

from .errors import ImageError

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
RESIZE = 256
CROP = 224
OFFSET = (RESIZE - CROP) // 2
# Pillow raises DecompressionBombError above twice its MAX_IMAGE_PIXELS; the same default here.
DEFAULT_MAX_PIXELS = 2 * 89_478_485


@dataclasses.dataclass(frozen=True)
class Preprocessed:
    array: np.ndarray  # float32 [224, 224, 3]
    width: int  # of the original image
    height: int


# Pillow decodes PostScript by running Ghostscript on it: never for untrusted uploads.
REFUSED_FORMATS = {"EPS": "PostScript/EPS is not decoded (it would run Ghostscript on the upload)"}
_POSTSCRIPT_MAGIC = (b"%!PS", b"\xc5\xd0\xd3\xc6")
_formats: tuple[str, ...] | None = None


def _allowed_formats() -> tuple[str, ...]:
    global _formats
    if _formats is None:
        Image.init()
        _formats = tuple(f for f in Image.OPEN if f not in REFUSED_FORMATS)
    return _formats


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError("empty", "the file has no bytes")
    if data.startswith(_POSTSCRIPT_MAGIC):
        raise ImageError("unsupported_format", REFUSED_FORMATS["EPS"])
    with warnings.catch_warnings():
        # Pillow warns (does not fail) between MAX_IMAGE_PIXELS and twice that, and about odd
        # headers; the explicit pixel check below decides instead.
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data), formats=_allowed_formats())
        except Image.DecompressionBombError as exc:
            raise ImageError("decompression_bomb", str(exc)) from None
        except Image.UnidentifiedImageError:
            raise ImageError("undecodable", "not an image format Pillow can read") from None
        except Exception as exc:  # Pillow's plugins raise many types for garbage input
            raise ImageError("undecodable", _describe(exc)) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError("undecodable", f"image has size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            "decompression_bomb", f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
        )
    return image


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _decode_rgb(data: bytes, max_pixels: int, draft: bool = False) -> tuple[Image.Image, int, int]:
    """The decoded RGB image and the original's width and height."""
    image = _open(data, max_pixels)
    width, height = image.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if draft and image.format == "JPEG":
                # let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the 256x256 resize
                image.draft("RGB", (RESIZE, RESIZE))
            image.load()
            if image.mode != "RGB":
                image = image.convert("RGB")
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("too_large", "not enough memory to decode the image") from None
    except Exception as exc:
        message = _describe(exc)
        kind = "truncated" if "truncated" in message or isinstance(exc, EOFError) else "undecodable"
        raise ImageError(kind, message) from None
    return image, width, height


def yahoo_array(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessed:
    """Yahoo's exact preprocessing."""
    return _resize_reencode_crop(*_decode_rgb(data, max_pixels))


def fast_array(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessed:
    """Yahoo's steps, but large JPEGs are decoded at reduced scale (libjpeg's DCT scaling)."""
    return _resize_reencode_crop(*_decode_rgb(data, max_pixels, draft=True))


def _resize_reencode_crop(image: Image.Image, width: int, height: int) -> Preprocessed:
    resized = image.resize((RESIZE, RESIZE), resample=Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG")
    buffer.seek(0)
    rgb = np.asarray(Image.open(buffer), dtype=np.float32)[OFFSET:OFFSET + CROP, OFFSET:OFFSET + CROP]
    return Preprocessed(np.ascontiguousarray(rgb[:, :, ::-1] - MEAN_BGR), width, height)


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


def tensorflow_array(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessed:
    """The TensorFlow loader for one file; the header is checked with Pillow for size limits."""
    global _tf_single
    import tensorflow as tf

    width, height = _open(data, max_pixels).size  # header only: size and bomb check
    if _tf_single is None:
        _tf_single = tf.function(tf_preprocess, input_signature=[tf.TensorSpec([], tf.string)])
    try:
        array = _tf_single(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        raise ImageError("undecodable", (exc.message or type(exc).__name__).splitlines()[0]) from None
    return Preprocessed(array, width, height)


LOADERS = {"yahoo": yahoo_array, "fast": fast_array, "tensorflow": tensorflow_array}


def load_image(data: bytes, loader: str = "yahoo", max_pixels: int = DEFAULT_MAX_PIXELS) -> Preprocessed:
    try:
        fn = LOADERS[loader]
    except KeyError:
        raise ValueError(f"unknown loader {loader!r}; choose one of {sorted(LOADERS)}") from None
    return fn(data, max_pixels)
