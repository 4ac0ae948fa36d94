"""Model-only throughput on synthetic input, after warm-up (``nsfw-scan bench``)."""

from __future__ import annotations

import time

import numpy as np


def images_per_second(score, batch_size: int, seconds: float, warmup: int = 2) -> float:
    batch = np.random.default_rng(0).uniform(-123, 151, (batch_size, 224, 224, 3)).astype(np.float32)
    for _ in range(warmup):
        score(batch)
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or done == 0:
        score(batch)
        done += batch_size
    return done / elapsed
