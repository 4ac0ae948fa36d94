"""Video uploads (mp4, mov, m4v, 3gp, webm, mkv, avi: whatever the FFmpeg bundled with PyAV
decodes) as views, each frame through Yahoo's steps like a still, so a clip is scored on what a
viewer sees over its whole duration, never on its first frame only.

- **Sampling:** the frame shown at every whole second (0 s, 1 s, 2 s, ...) while that gives at
  most ``policy.video_max_frames`` samples (301: a 5-minute clip), and the last frame. Anything
  on screen for a whole second of such a clip is sampled: every interval of one second holds a
  whole second. Longer videos: that many times spread evenly over the duration, the first and
  the last frame included. One view per distinct frame, named by its time (``frame at 9.6 s``);
  the first frame is Yahoo's view (``yahoo_score``).
- **Decoding:** frames one at a time; where samples lie ``_SEEK_FROM`` seconds or more apart
  the decoder seeks to the keyframe before each one instead of decoding everything between.
  Rotation metadata (phones' portrait clips) is applied as players apply it.
- **Bounds:** the frames' decoded pixels per file are capped (``policy.video_max_pixels``),
  and so is each frame's size (the caller's ``max_pixels``); past the cap the samples so far
  stand. A file cut short, or with a broken frame, gives the frames decoded before the damage,
  or an error kind if there were none. A file without a video stream is ``no_video``.

PyAV (the optional extra ``video``) decodes. Its wheels bundle an FFmpeg built with GPL parts
(x264, x265), so it is not a default dependency; without it a video is ``unsupported_format``
with a message that names the extra.
"""

from __future__ import annotations

import io
import math

from PIL import Image

from .errors import Unscorable

EXTRA = "pip install 'nsfw-scan[video]'"
_SEEK_FROM = 2.0  # seconds between samples from which seeking beats decoding everything


def frame_name(seconds: float) -> str:
    return f"frame at {seconds:.1f} s"


def sample_times(duration: float | None, max_frames: int) -> tuple[list[float], bool]:
    """The times to sample (seconds from the start) and whether they are a whole-second grid
    (else spread evenly); ``duration`` None: unknown, a whole-second grid up to ``max_frames``."""
    if max_frames <= 1:
        return [0.0], True
    if duration is None or duration < max_frames:
        count = max_frames if duration is None else math.floor(duration) + 1
        return [float(k) for k in range(count)], True
    step = duration / (max_frames - 1)
    return [k * step for k in range(max_frames)], False


def video_views(data: bytes, max_pixels: int, policy) -> "Preprocessed":  # noqa: F821
    """The views of a video file (``model.preprocess.Preprocessed``): its sampled frames, each
    through Yahoo's steps after the resize (``policy``: a ``ViewPolicy``; with ``views: yahoo``
    the first frame only)."""
    from . import preprocess

    try:
        import av
    except ImportError:
        raise Unscorable("unsupported_format", f"a video; scoring videos needs PyAV: {EXTRA}") from None
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as exc:  # FFmpeg's errors for garbage and cut headers
        raise Unscorable("undecodable", f"starts like a video, but FFmpeg cannot read it: damaged, cut short "
                                        f"before its index, or a format it does not know ({preprocess._describe(exc)})") from None
    with container:
        if not container.streams.video:
            raise Unscorable("no_video", "the file has no video stream (audio only?)")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise Unscorable("decompression_bomb", f"{width}x{height} frames exceed the limit of {max_pixels} pixels")
        duration = _duration(container, stream)
        frames = stream.frames or (round(duration * float(stream.average_rate)) if duration and stream.average_rate else 0)
        wanted = 1 if policy.views == preprocess.YAHOO_VIEW else policy.video_max_frames
        times, grid = sample_times(duration, max(1, wanted))
        sampler = _Sampler(stream, times, policy.video_max_pixels, preprocess)
        try:
            if grid or wanted == 1:  # to the end for its last frame, unless only the first is wanted
                sampler.decode_through(container, to_the_end=wanted > 1 and duration is not None)
            else:
                sampler.seek_each(container)
        except _Stop:
            pass
        views = sampler.views()
    if not views:
        raise Unscorable("truncated" if sampler.broken else "undecodable",
                         "the video breaks before its first frame" if sampler.broken else "the video has no frames")
    return preprocess.Preprocessed(tuple(views), width, height, max(frames, len(views)))


class _Stop(Exception):
    """The file's pixel budget is spent, or its frames are broken: the samples so far stand."""


class _Sampler:
    """Collects the frame shown at each sample time, resized, one frame decoded at a time."""

    def __init__(self, stream, times: list[float], max_pixels: int, preprocess):
        self._stream = stream
        self._times = times
        self._budget = max_pixels
        self._pp = preprocess
        self._start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        self._samples: dict[int, tuple[float, Image.Image, tuple[int, int]]] = {}  # pts -> (time, resized, size)
        self._last = None
        self.broken = False

    def decode_through(self, container, to_the_end: bool) -> None:
        """Decodes the frames from the start, keeping those shown at the sample times, up to the
        last sample time or (``to_the_end``) the last frame, which is kept too."""
        pending, previous = 0, None
        try:
            for frame in self._frames(container):
                seconds = self._seconds(frame)
                while pending < len(self._times) and self._times[pending] < seconds - 1e-6:
                    self._keep(previous or frame)
                    pending += 1
                previous = frame
                if pending >= len(self._times) and not to_the_end:
                    return
        except _Stop:  # the budget spent or the stream broken: the frame before stands too
            if previous is not None:
                self._keep(previous)
            raise
        if previous is not None:
            self._keep(previous)  # the last frame: the end of the clip

    def seek_each(self, container) -> None:
        """For each sample time: seek to the keyframe before it, decode up to the frame shown then."""
        time_base = self._stream.time_base
        for target in self._times:
            container.seek(int((target + self._start) / time_base), stream=self._stream, backward=True, any_frame=False)
            previous = None
            for frame in self._frames(container):
                if self._seconds(frame) > target + 1e-6:
                    break
                previous = frame
            if previous is not None:
                self._keep(previous)

    def _frames(self, container):
        """Decoded frames, the budget charged for each; a broken stream ends them."""
        try:
            for frame in container.decode(self._stream):
                self._budget -= frame.width * frame.height
                if self._budget < 0:
                    raise _Stop
                yield frame
        except _Stop:
            raise
        except Exception:  # a frame FFmpeg cannot decode, or the file cut short
            self.broken = True
            raise _Stop from None

    def _seconds(self, frame) -> float:
        return float(frame.time) - self._start if frame.time is not None else 0.0

    def _keep(self, frame) -> None:
        key = frame.pts if frame.pts is not None else len(self._samples)
        if key in self._samples:
            return
        picture = frame.to_image()  # RGB
        if frame.rotation:  # degrees counterclockwise, as players turn it
            picture = picture.rotate(frame.rotation, expand=True)
        self._samples[key] = (self._seconds(frame), self._pp._resize(picture), picture.size)

    def views(self) -> list:
        ordered = sorted(self._samples.values(), key=lambda sample: sample[0])
        return [self._pp.View(frame_name(seconds), self._pp._finish(resized), self._pp._hash(resized, size, size))
                for seconds, resized, size in ordered]


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # FFmpeg's AV_TIME_BASE
    return None

