"""Video uploads (mp4, mov, m4v, 3gp, webm, mkv, avi: whatever the FFmpeg bundled with PyAV
decodes) as views, each frame through Yahoo's steps like a still, so a clip is scored on what a
viewer sees over its whole duration, never on its first frame only.

- **Which stream:** the one players show: the first marked default (an mp4's enabled track),
  else the first; cover art only where there is no other. Other video streams are not scored.
- **Sampling:** the frame shown at every whole second (0 s, 1 s, 2 s, ...) while that gives at
  most ``policy.video_max_frames`` samples (301: a 5-minute clip), and the last frame. Anything
  on screen for a whole second of such a clip is sampled: every interval of one second holds a
  whole second. Longer videos: that many times spread evenly over the duration, the first and
  the last frame included. One view per distinct frame, named by its time (``frame at 9.6 s``);
  the first frame is Yahoo's view (``yahoo_score``).
- **Whose duration:** the frames' own (``Timeline``: the packets' time stamps, read before
  decoding), never the header's, which can claim 3 s for 20 or 10^12 s for 20, or be missing;
  the frame count too is the packets'. A frame shown longer than ``_LONGEST_GAP`` (1 s) counts
  as shown 1 s when samples are spread, so that a frame stamped a day after the rest, or a
  still held for an hour, does not leave the other frames unsampled.
- **Decoding:** frames one at a time, in the file's order; where a sample's keyframe lies past
  the sample before and decoding from it costs fewer frames than decoding on
  (``Timeline.jumps``), the packets up to it are read but not decoded (the file's seek index
  is not used). A clip with one keyframe is decoded once through, never again from its start.
  Rotation metadata (phones' portrait clips) is applied as players apply it.
- **Bounds:** every decoded frame's own size is checked against the caller's ``max_pixels``
  (not only the header's: an MJPEG frame can be larger than its stream says), and one over it
  makes the file ``decompression_bomb``. The frames' decoded pixels per file are capped
  (``policy.video_max_pixels``), each frame counting at least ``_SMALLEST_FRAME`` (128x128)
  so that tiny frames are bounded in number too; past the cap the samples so far stand. A file
  cut short, or with a broken frame, gives the frames decoded before the damage, or an error
  kind if there were none. A file without a video stream is ``no_video``.

PyAV (the optional extra ``video``) decodes. Its wheels bundle an FFmpeg built with GPL parts
(x264, x265), so it is not a default dependency; without it a video is ``unsupported_format``
with a message that names the extra.
"""

from __future__ import annotations

import io
import math
from array import array

import numpy as np
from PIL import Image

from ..decision import AS_PICTURE
from ..errors import Unscorable, describe
from .views import YAHOO_VIEW
from .yahoo_steps import Preprocessed, View, finish, hash_as_displayed, resize

EXTRA = "pip install 'nsfw-scan[video]'"
_SMALLEST_FRAME = 128 * 128  # pixels that a decoded frame costs the budget at least, however small
_JUMP_COST = 2  # frames' decoding that starting afresh on a keyframe costs (it is larger than the rest)
_MOST_FRAMES = 2**31 - 1  # the frames column's int32
_SAME_TIME = 1e-6  # seconds: times closer than this are the same
_LONGEST_GAP = 1.0  # seconds: a frame shown longer counts as shown this long when samples are spread


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


def video_views(data: bytes, max_pixels: int, policy) -> Preprocessed:
    """The views of a video file (``Preprocessed``): its sampled frames, each
    through Yahoo's steps after the resize (``policy``: a ``ViewPolicy``; with ``views: yahoo``
    the first frame only)."""
    av = _pyav()
    with _opened(av, data) as container:
        stream = shown_stream(container)
        if stream.codec_context is None:
            raise Unscorable("undecodable", "its video stream is in a codec FFmpeg does not decode")
        place, width, height = stream.index, stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise Unscorable("decompression_bomb", f"{width}x{height} frames exceed the limit of {max_pixels} pixels")
        timeline = Timeline.read(container, stream)
    wanted = 1 if policy.views == YAHOO_VIEW else max(1, policy.video_max_frames)
    sampler = _Sampler(timeline, timeline.targets(wanted), max_pixels, policy.video_max_pixels,
                       policy.clip_thresholds)
    with _opened(av, data) as container:  # a new demuxer: from the first packet, whatever the file's index says
        sampler.decode(container, container.streams[place], to_the_end=wanted > 1)
    views = sampler.views()
    if not views:
        raise Unscorable("truncated" if sampler.broken else "undecodable",
                         "the video breaks before its first frame" if sampler.broken else "the video has no frames")
    width, height = sampler.size or (width, height)
    return Preprocessed(tuple(views), width, height, min(max(timeline.frames, len(views)), _MOST_FRAMES))


def _pyav():
    try:
        import av
    except ImportError:
        raise Unscorable("unsupported_format", f"a video; scoring videos needs PyAV: {EXTRA}") from None
    return av


def _opened(av, data: bytes):
    try:
        return av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as exc:  # FFmpeg's errors for garbage and cut headers
        raise Unscorable("undecodable", f"starts like a video, but FFmpeg cannot read it: damaged, cut short "
                                        f"before its index, or a format it does not know ({describe(exc)})") from None


def shown_stream(container):
    """The video stream a player shows: the first marked default (an mp4's enabled track), else
    the first; cover art (an attached picture) only where there is nothing else."""
    import av

    streams = list(container.streams.video)
    if not streams:
        raise Unscorable("no_video", "the file has no video stream (audio only?)")
    moving = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic] or streams
    return next((s for s in moving if s.disposition & av.stream.Disposition.default), moving[0])


class Timeline:
    """The shown stream's frames as the file's packets place them, read before any decoding (a
    pass over the packets costs about 1% of decoding them): each packet's time in seconds from
    the first frame (NaN for a packet that shows nothing) and whether it is a keyframe, in the
    file's order. The file's declared duration and frame count are not used: they can lie."""

    def __init__(self, start: float, seconds: np.ndarray, keyframes: np.ndarray, last_duration: float):
        self.start = start  # the first frame's time, in the stream's clock
        self.seconds = seconds
        self.keyframes = keyframes
        self.shown = np.sort(seconds[~np.isnan(seconds)])
        self.frames = len(self.shown)
        # the clock that samples are spread on: a frame shown longer than _LONGEST_GAP (a still
        # held for minutes, a stamp an hour past the rest) counts as shown that long
        excess = np.maximum(np.diff(self.shown) - _LONGEST_GAP, 0.0)
        self._clock = self.shown - np.concatenate(([0.0], np.cumsum(excess)))
        self.length = float(self._clock[-1] + min(last_duration, _LONGEST_GAP)) if self.frames else None

    @classmethod
    def read(cls, container, stream) -> "Timeline":
        stamps, keys, last_duration, latest = array("d"), bytearray(), 0.0, -math.inf
        time_base = float(stream.time_base) if stream.time_base is not None else 0.0
        try:
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                shows = bool(packet.size) and stamp is not None and time_base > 0 and not packet.is_discard
                stamps.append(stamp * time_base if shows else math.nan)
                keys.append(shows and packet.is_keyframe)
                if shows and stamps[-1] >= latest:
                    latest, last_duration = stamps[-1], (packet.duration or 0) * time_base
        except Exception:  # damage: the packets before it are the file's
            pass
        seconds = np.frombuffer(stamps, dtype=np.float64) if stamps else np.zeros(0)
        shown = seconds[~np.isnan(seconds)]
        start = float(shown.min()) if len(shown) else 0.0
        return cls(start, seconds - start, np.frombuffer(bytes(keys), dtype=np.bool_), last_duration)

    def targets(self, wanted: int) -> list[float]:
        """The times to sample (``sample_times`` over the frames' own length, on the clock where
        no frame lasts more than ``_LONGEST_GAP``), and with more than one wanted the last frame's."""
        times, _ = sample_times(self.length, wanted)
        if self.frames and np.any(self._clock != self.shown):
            before = np.maximum(np.searchsorted(self._clock, np.array(times) + _SAME_TIME, side="right") - 1, 0)
            times = [float(t) for t in self.shown[before] + (np.array(times) - self._clock[before])]
        if wanted > 1 and self.frames and self.shown[-1] > times[-1] + _SAME_TIME:
            times.append(float(self.shown[-1]))
        return times

    def jumps(self, times: list[float]) -> dict[int, int]:
        """For a sample (by its index in ``times``): the keyframe packet (by its place in the file)
        from which to decode it, where decoding from there costs less than decoding on from the
        sample before. Keyframes out of time order: none (everything is decoded in turn)."""
        order = np.flatnonzero(self.keyframes)
        at = self.seconds[order]
        if len(at) < 2 or np.any(np.diff(at) < 0):
            return {}
        jumps = {}
        for index in range(1, len(times)):
            before, target = times[index - 1], times[index]
            key = int(np.searchsorted(at, target + _SAME_TIME, side="right")) - 1
            if key < 0 or at[key] <= before + _SAME_TIME:
                continue  # no keyframe since the sample before: decoding on is the only way
            if self._frames_in(at[key], target) + _JUMP_COST < self._frames_in(before, target):
                jumps[index] = int(order[key])
        return jumps

    def _frames_in(self, start: float, end: float) -> int:
        shown = self.shown
        return int(np.searchsorted(shown, end + _SAME_TIME, side="right") - np.searchsorted(shown, start, side="left"))


class _Stop(Exception):
    """The file's pixel budget is spent, or its frames are broken: the samples so far stand."""


class _Sampler:
    """Collects the frame shown at each sample time, resized, one frame decoded at a time, in the
    file's order; where a sample's keyframe is worth it (``Timeline.jumps``), the packets before
    that keyframe are read but not decoded."""

    def __init__(self, timeline: Timeline, times: list[float], max_pixels: int, budget: int, clip_thresholds):
        self._timeline = timeline
        self._counts = clip_thresholds  # of the frames after the first (``ViewPolicy.clip_thresholds``)
        self._times = times
        self._jumps = timeline.jumps(times)
        self._max_pixels = max_pixels
        self._budget = budget
        self._samples: dict[int, tuple[float, Image.Image, tuple[int, int]]] = {}  # pts -> (time, resized, size)
        self._pending = 0  # the first sample time not yet passed
        self._shown = None  # the last frame decoded: shown until the next one
        self.size = None  # the first frame's (width, height)
        self.decoded = 0  # frames decoded
        self.broken = False

    def decode(self, container, stream, to_the_end: bool) -> None:
        """Decodes the frames in the file's order, keeping those shown at the sample times, up to
        the last sample time or (``to_the_end``) the last frame, which is kept too."""
        skip_to = None
        try:
            for index, packet in enumerate(self._packets(container, stream)):
                if skip_to is not None:
                    if index < skip_to:
                        continue
                    stream.codec_context.flush_buffers()  # start afresh on the keyframe
                    skip_to, self._shown = None, None
                for frame in self._decoded(packet):
                    self._take(frame)
                    if self._pending >= len(self._times) and not to_the_end:
                        return
                if self._jumps.get(self._pending, -1) > index:
                    skip_to = self._jumps[self._pending]
        except _Stop:  # the budget spent or the stream broken: the frame before stands too
            pass
        if self._shown is not None:
            self._keep(self._shown)  # the last frame: the end of the clip

    def _packets(self, container, stream):
        try:
            yield from container.demux(stream)
        except Exception:  # the file cut short, or a packet FFmpeg cannot read
            self.broken = True
            raise _Stop from None

    def _decoded(self, packet):
        """The packet's frames, each within the frame limit and charged to the budget."""
        try:
            frames = packet.decode()
        except Exception:  # a frame FFmpeg cannot decode
            self.broken = True
            raise _Stop from None
        for frame in frames:
            pixels = frame.width * frame.height
            if pixels > self._max_pixels:
                raise Unscorable("decompression_bomb", f"the frame at {self._seconds(frame):.1f} s is {frame.width}x"
                                                       f"{frame.height}, over the limit of {self._max_pixels} pixels")
            self.size = self.size or (frame.width, frame.height)
            self.decoded += 1
            self._budget -= max(pixels, _SMALLEST_FRAME)
            if self._budget < 0:
                raise _Stop
            yield frame

    def _take(self, frame) -> None:
        """Keeps the frame shown at each sample time that ``frame`` comes after."""
        seconds = self._seconds(frame)
        while self._pending < len(self._times) and self._times[self._pending] < seconds - _SAME_TIME:
            self._keep(self._shown or frame)
            self._pending += 1
        self._shown = frame

    def _seconds(self, frame) -> float:
        return float(frame.time) - self._timeline.start if frame.time is not None else 0.0

    def _keep(self, frame) -> None:
        key = frame.pts if frame.pts is not None else len(self._samples)
        if key in self._samples:
            return
        picture = frame.to_image()  # RGB
        if frame.rotation:  # degrees counterclockwise, as players turn it
            picture = picture.rotate(frame.rotation, expand=True)
        self._samples[key] = (self._seconds(frame), resize(picture), picture.size)

    def views(self) -> list:
        ordered = sorted(self._samples.values(), key=lambda sample: sample[0])
        return [View(frame_name(seconds), finish(resized), hash_as_displayed(resized, size, size),
                     AS_PICTURE if index == 0 else self._counts)
                for index, (seconds, resized, size) in enumerate(ordered)]


class _Picture(_Sampler):
    """A sampler that keeps the picture shown at its one time as it is, not resized."""

    picture = None

    def _keep(self, frame) -> None:
        if self.picture is None:
            picture = frame.to_image()  # RGB
            self.picture = picture.rotate(frame.rotation, expand=True) if frame.rotation else picture


def frame_at(data: bytes, seconds: float, max_pixels: int, budget: int) -> Image.Image:
    """The picture the shown stream shows ``seconds`` after its start (as a player turns it),
    decoded as :func:`video_views` decodes (each frame within ``max_pixels``, ``budget`` pixels
    decoded at most); the last one decoded where the clip is shorter or the budget runs out."""
    av = _pyav()
    with _opened(av, data) as container:
        stream = shown_stream(container)
        if stream.codec_context is None:
            raise Unscorable("undecodable", "its video stream is in a codec FFmpeg does not decode")
        place, timeline = stream.index, Timeline.read(container, stream)
    sampler = _Picture(timeline, [max(0.0, seconds)], max_pixels, budget, None)
    with _opened(av, data) as container:
        sampler.decode(container, container.streams[place], to_the_end=False)
    if sampler.picture is None:
        raise Unscorable("truncated" if sampler.broken else "undecodable", "no frame could be decoded")
    return sampler.picture
