"""Video clips made here with PyAV from pictures: each second of a clip shows one picture."""

from __future__ import annotations

import io
import struct
import tempfile
from fractions import Fraction

import numpy as np
from PIL import Image

from .corpus import COMPACT

FLAGGED = COMPACT / "generated" / "flagged.png"  # a picture the model scores nsfw (see its README)
# one it scores nsfw shown inside a scene too, in the window of a region map that holds it
FLAGGED_IN_SCENE = COMPACT / "generated" / "flagged_in_scene.png"


def flagged(path=FLAGGED) -> Image.Image:
    return Image.open(path).convert("RGB")


def clip(seconds: list[Image.Image], fps: int | Fraction = 5, size=(160, 120), codec: str = "libx264", fmt: str = "mp4",
         rotation: int | None = None, faststart: bool = False, keyframe_every: int | None = None,
         last_at: float | None = None) -> bytes:
    """A clip showing ``seconds[k]`` during second ``k``, ``fps`` frames a second (below one: each
    picture is one frame, shown ``1 / fps`` seconds); ``rotation``:
    the display rotation (degrees counterclockwise) written into the stream, as phones do;
    ``faststart``: an mp4's index before its frames (as streaming sites write them);
    ``keyframe_every``: frames from one keyframe to the next, exactly (libx264: no keyframes
    where the picture changes); ``last_at``: the last frame's time stamp, in seconds (the frames
    before it keep theirs)."""

    options = {"movflags": "faststart"} if faststart else {}
    with tempfile.TemporaryDirectory() as folder:  # faststart rewrites the file: a real one
        path = f"{folder}/clip"
        _write(path, seconds, fps, size, codec, fmt, rotation, options, keyframe_every, last_at)
        with open(path, "rb") as f:
            return f.read()


def _write(path, seconds, fps, size, codec, fmt, rotation, options, keyframe_every=None, last_at=None) -> None:
    import av

    with av.open(path, mode="w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if keyframe_every is not None:
            stream.codec_context.gop_size = keyframe_every
            if codec == "libx264":
                stream.codec_context.options = {"x264-params": f"keyint={keyframe_every}:min-keyint={keyframe_every}:scenecut=0"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        each, last = max(1, int(fps)), len(seconds) * max(1, int(fps)) - 1
        for index, picture in enumerate(seconds):
            pixels = np.asarray(picture.convert("RGB").resize(size, Image.Resampling.BILINEAR))
            for k in range(index * each, index * each + each):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                if last_at is not None:
                    frame.pts, frame.time_base = (k if k < last else round(last_at * fps)), Fraction(1, fps)
                for packet in stream.encode(frame):
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


def declaring(data: bytes, seconds: float | None) -> bytes:
    """A WebM/Matroska clip (written by ``clip``) whose header declares a duration of ``seconds``
    (its Segment's Duration, an 8-byte float in the default milliseconds, rewritten in place), or
    (None) none: the element becomes an EBML Void of the same size."""
    at = data.find(b"\x44\x89\x88")
    assert at > 0, "no 8-byte Duration element"
    element = b"\x44\x89\x88" + struct.pack(">d", seconds * 1000) if seconds is not None else b"\xec\x89" + bytes(9)
    return data[:at] + element + data[at + len(element):]


def two_streams(first: Image.Image, second: Image.Image, seconds: int = 2, size=(64, 48)) -> bytes:
    """An mp4 with two video streams, showing ``first`` and ``second``; only the second is marked
    default (the enabled track players show)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        streams = [container.add_stream("libx264", rate=1) for _ in (first, second)]
        for stream, default in zip(streams, (False, True)):
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.disposition = av.stream.Disposition.default if default else av.stream.Disposition(0)
        for _ in range(seconds):
            for stream, picture in zip(streams, (first, second)):
                pixels = np.asarray(picture.convert("RGB").resize(size, Image.Resampling.BILINEAR))
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
        for stream in streams:
            for packet in stream.encode():
                container.mux(packet)
    return buffer.getvalue()


def mjpeg(pictures: list[Image.Image], header=(64, 64), fmt: str = "avi") -> bytes:
    """An MJPEG clip, a picture a second, each frame the picture's JPEG at its own size, while the
    stream's header says ``header``."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height = header
        stream.pix_fmt = "yuvj420p"
        for second, picture in enumerate(pictures):
            jpeg = io.BytesIO()
            picture.convert("RGB").save(jpeg, "JPEG")
            packet = av.Packet(jpeg.getvalue())
            packet.stream, packet.time_base = stream, Fraction(1, 1)
            packet.pts = packet.dts = second
            packet.duration = 1
            container.mux(packet)
    return buffer.getvalue()
