"""Video clips made here with PyAV from pictures: each second of a clip shows one picture."""

from __future__ import annotations

import io
import tempfile
from fractions import Fraction

import numpy as np
from PIL import Image

from .corpus import COMPACT

FLAGGED = COMPACT / "generated" / "flagged.png"  # a picture the model scores nsfw (see its README)


def flagged() -> Image.Image:
    return Image.open(FLAGGED).convert("RGB")


def clip(seconds: list[Image.Image], fps: int | Fraction = 5, size=(160, 120), codec: str = "libx264", fmt: str = "mp4",
         rotation: int | None = None, faststart: bool = False) -> bytes:
    """A clip showing ``seconds[k]`` during second ``k``, ``fps`` frames a second (below one: each
    picture is one frame, shown ``1 / fps`` seconds); ``rotation``:
    the display rotation (degrees counterclockwise) written into the stream, as phones do;
    ``faststart``: an mp4's index before its frames (as streaming sites write them)."""

    options = {"movflags": "faststart"} if faststart else {}
    with tempfile.TemporaryDirectory() as folder:  # faststart rewrites the file: a real one
        path = f"{folder}/clip"
        _write(path, seconds, fps, size, codec, fmt, rotation, options)
        with open(path, "rb") as f:
            return f.read()


def _write(path, seconds, fps, size, codec, fmt, rotation, options) -> None:
    import av

    with av.open(path, mode="w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for picture in seconds:
            pixels = np.asarray(picture.convert("RGB").resize(size, Image.Resampling.BILINEAR))
            for _ in range(max(1, int(fps))):
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def audio_only() -> bytes:
    """An mp4 with one AAC audio stream and no video."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = np.zeros((1, 44100), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
