"""Yahoo's steps after a picture or a video frame is decoded, shared by every loader that uses
Pillow: resize to 256x256 bilinear, JPEG round trip with Pillow's defaults, centre crop to 224,
RGB to BGR (:func:`finish`), the PDQ hash of the resize as displayed (:func:`hash_as_displayed`),
and what a loader gives: a file's views (:class:`View`, :class:`Preprocessed`), each's pixels
waiting as uint8 until :func:`network_input` subtracts the mean.
"""

from __future__ import annotations

import dataclasses
import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..decision import AS_PICTURE, OwnThresholds
from . import pdq

if TYPE_CHECKING:
    from .preprocess import RegionMap

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
RESIZE = 256
CROP = 224
OFFSET = (RESIZE - CROP) // 2
# Orientation tag values that display the stored pixels otherwise (1: as stored), and how
# (as ``ImageOps.exif_transpose``)
ORIENTATION_TAG = 0x0112
AS_DISPLAYED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                 8: Image.Transpose.ROTATE_90}


@dataclasses.dataclass(frozen=True)
class View:
    name: str  # "yahoo", "frame 17" (from 0), "exif-rotated", "8-bit from 16-bit", "regions", ...
    # uint8 [224, 224, 3], BGR: the network's input before the mean is subtracted, a quarter of
    # its size, which is how views wait for the model (``network_input`` makes the input); a
    # region map's is larger (``region_map_view``)
    pixels: np.ndarray
    # its PDQ hash (``model.pictures.pdq``) as displayed (EXIF orientation applied); None where the
    # loader cannot make one (the TensorFlow loader)
    pdq: pdq.Pdq | None = None
    # how its score counts in its file's (``model.decision.OwnThresholds``)
    counts: OwnThresholds = AS_PICTURE
    # a region map's windows, by which its score is named (None: a view of one window)
    windows: "RegionMap | None" = None

    @property
    def array(self) -> np.ndarray:
        """The network's input: float32 [224, 224, 3], BGR, mean-subtracted."""
        return network_input(self.pixels)


def network_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 BGR pixels (``[..., 224, 224, 3]``) -> the network's float32 input, mean-subtracted."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
    return np.asarray(pixels, dtype=np.float32) - MEAN_BGR


@dataclasses.dataclass(frozen=True)
class Preprocessed:
    views: tuple[View, ...]  # Yahoo's first
    width: int  # of the original image
    height: int
    frames: int = 1  # in the file (Pillow's n_frames)

    @property
    def array(self) -> np.ndarray:
        """Yahoo's view."""
        return self.views[0].array

    @property
    def scored(self) -> int:
        """How many views its views are scored as: a region map's windows each count as one."""
        return sum(view.windows.count if view.windows else 1 for view in self.views)


def resize(image: Image.Image) -> Image.Image:
    return image.resize((RESIZE, RESIZE), resample=Image.Resampling.BILINEAR)


def finish(resized: Image.Image) -> np.ndarray:
    """Yahoo's steps after the resize: JPEG round-trip with PIL's defaults, center crop, BGR
    (uint8; ``network_input`` subtracts the mean)."""
    return jpeg_round_trip(resized, OFFSET)


def jpeg_round_trip(resized: Image.Image, border: int) -> np.ndarray:
    """``resized`` saved as JPEG with PIL's defaults and read back, less ``border`` pixels at
    every edge, BGR."""
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG")
    buffer.seek(0)
    rgb = np.asarray(Image.open(buffer))[border:resized.height - border, border:resized.width - border]
    return np.ascontiguousarray(rgb[:, :, ::-1])


def hash_as_displayed(resized: Image.Image, decoded: tuple[int, int], full: tuple[int, int], orientation: int = 1) -> pdq.Pdq:
    """The PDQ hash of an image as displayed (``orientation``), from its 256x256 resize
    (``pdq.hash_of_resized``); ``decoded``: the size of the pixels that were resized, ``full``
    the image's."""
    if orientation in AS_DISPLAYED:
        method = AS_DISPLAYED[orientation]
        resized = resized.transpose(method)
        if method in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                      Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
            decoded, full = decoded[::-1], full[::-1]
    return pdq.hash_of_resized(np.asarray(resized), decoded, full)
