"""Videos: how many seconds of video nsfw-scan scores per second, and how many frames it scores
per clip, on 720p H.264 clips of 10 s, 60 s and 5 min (25 frames a second, a photo panned
slowly, x264's default keyframe interval), one run.

For each clip: wall seconds of decoding and sampling with Yahoo's steps (``load_image``, one
thread), of the float32 model on the sampled frames (batches of 32, both cores), and seconds of
video per second of both. opennsfw2's ``predict_video_frames`` cannot run here (it downloads its
weights at first use); the frames its default method scores (every 8th) are given beside ours.

    python benchmarks/video.py [--lengths 10,60,300]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from PIL import Image

from nsfw_scan.model.engines import TensorFlowScorer
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.views import ViewPolicy
from nsfw_scan.pipeline.demo import _photo

FPS, SIZE = 25, (1280, 720)


def make_clip(seconds: int) -> bytes:
    import av

    scene = _photo((SIZE[0] * 2, SIZE[1]), 7)
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        with av.open(f.name, mode="w") as container:
            stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
            stream.width, stream.height = SIZE
            stream.pix_fmt = "yuv420p"
            frames = seconds * FPS
            for i in range(frames):
                left = int(i / max(1, frames - 1) * SIZE[0])  # a slow pan over the scene
                pixels = np.asarray(scene.crop((left, 0, left + SIZE[0], SIZE[1])))
                for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return open(f.name, "rb").read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="10,60,300", help="clip lengths in seconds")
    args = parser.parse_args()
    scorer = TensorFlowScorer()
    policy = ViewPolicy()
    print(f"{'clip':>6} {'MB':>6} {'frames':>7} {'scored':>7} {'every 8th':>9} {'decode+prep s':>13} "
          f"{'model s':>8} {'video s/s':>9}")
    for seconds in (int(s) for s in args.lengths.split(",")):
        data = make_clip(seconds)
        started = time.perf_counter()
        image = load_image(data, policy=policy)
        loading = time.perf_counter() - started
        arrays = np.stack([view.array for view in image.views])
        started = time.perf_counter()
        for start in range(0, len(arrays), 32):
            scorer.score(arrays[start:start + 32])
        model = time.perf_counter() - started
        print(f"{seconds:>5}s {len(data) / 1e6:6.1f} {image.frames:7d} {len(image.views):7d} {image.frames // 8:9d} "
              f"{loading:13.2f} {model:8.2f} {seconds / (loading + model):9.1f}")


if __name__ == "__main__":
    Image.init()
    main()
