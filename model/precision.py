"""The cascade's first pass in the precision that is fastest on the CPU it runs on, chosen by
measurement in each worker process (``cascade.precision: auto``).

bfloat16 is twice float32's speed on CPUs with AVX-512 BF16 (AMD EPYC), over three times with AMX
(Intel Xeon of the 4th generation on), and half of it on Intel Xeons with AVX-512 BF16 but no AMX,
where oneDNN's bfloat16 kernels lose to its float32 ones; on CPUs without any of these it is
emulated. No flag tells which, so each worker times one bottleneck block of the network (the shape
of its third stage) in each candidate precision, as one compiled graph
each, and takes float32 unless another is at least ``PREFERRED_BY`` faster. About 0.1-0.3 s once per
worker process (``benchmarks/first_pass_choice.py``). Both precisions' scores lie within
``cascade.margin`` of the exact ones, so the decisions stay the exact steps' whichever is chosen.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from pathlib import Path

from .scorer import EXACT_PRECISION, PRECISIONS

AUTO = "auto"
CANDIDATES = PRECISIONS  # float32 first: the exact one, kept on a tie
PREFERRED_BY = 1.15  # how much faster another precision must be than float32 to be chosen
_BATCH, _SIDE, _CHANNELS, _INNER = 16, 14, 512, 128  # a third-stage bottleneck block's input
_CALLS = 5  # timed calls per precision, in turn, after one to warm up; the fastest counts
# flags of /proc/cpuinfo that decide bfloat16's speed, named as people know them
CPU_FLAGS = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX-BF16", "avx512_vnni": "AVX-512 VNNI",
             "avx512f": "AVX-512"}

# TensorFlow's oneDNN kernels: on unless this variable says 0 or false (TensorFlow's default on
# x86 Linux). Off, the default job ran at 0.59x its speed and bfloat16 lost its lead
# (benchmarks/cpu_knobs.py); the job's other CPU settings measured within noise of the defaults.
ONEDNN_SWITCH = "TF_ENABLE_ONEDNN_OPTS"

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Choice:
    """The precision chosen, and each candidate's measured speed (blocks per second)."""

    precision: str
    speeds: dict[str, float]
    seconds: float  # the measurement's cost

    def describe(self) -> str:
        ratio = self.speeds[self.precision] / self.speeds[EXACT_PRECISION]
        others = ", ".join(f"{p} {self.speeds[p] / self.speeds[EXACT_PRECISION]:.2f}x" for p in self.speeds
                           if p != EXACT_PRECISION)
        return (f"{self.precision} ({ratio:.2f}x float32's speed; measured {others} in {self.seconds:.2f} s)"
                if self.precision != EXACT_PRECISION else
                f"float32 (measured {others} float32's speed in {self.seconds:.2f} s)")


def choose(speeds: dict[str, float]) -> str:
    """The precision to use given each candidate's speed: float32 unless another is at least
    ``PREFERRED_BY`` times as fast (the fastest of those)."""
    floor = speeds[EXACT_PRECISION] * PREFERRED_BY
    faster = {p: s for p, s in speeds.items() if p != EXACT_PRECISION and s >= floor}
    return max(faster, key=faster.get) if faster else EXACT_PRECISION


@functools.cache
def fastest_precision() -> Choice:
    """This process's choice, measured at its first call (once per worker process)."""
    started = time.perf_counter()
    blocks = {precision: _block(precision) for precision in CANDIDATES}
    for run in blocks.values():
        run()  # traced and warmed up
    fastest = dict.fromkeys(CANDIDATES, float("inf"))
    for _ in range(_CALLS):  # in turn, so that a change in the machine's speed touches both
        for precision, run in blocks.items():
            call = time.perf_counter()
            run()
            fastest[precision] = min(fastest[precision], time.perf_counter() - call)
    speeds = {precision: 1.0 / seconds for precision, seconds in fastest.items()}
    choice = Choice(choose(speeds), speeds, time.perf_counter() - started)
    log.debug("first pass in %s on this CPU", choice.describe())
    return choice


def _block(precision: str):
    """One bottleneck block of the network's third stage (1x1, 3x3, 1x1 convolutions with ReLU
    and the residual add) in ``precision``, compiled as the network is, on random data: a
    function that runs it once."""
    import tensorflow as tf

    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    generator = tf.random.Generator.from_seed(0)
    data = tf.cast(generator.normal((_BATCH, _SIDE, _SIDE, _CHANNELS)), dtype)
    kernels = [tf.cast(generator.normal(shape) * 0.05, dtype) for shape in
               ((1, 1, _CHANNELS, _INNER), (3, 3, _INNER, _INNER), (1, 1, _INNER, _CHANNELS))]

    @tf.function(jit_compile=False)
    def block(x):
        y = x
        for kernel in kernels:
            y = tf.nn.relu(tf.nn.conv2d(y, kernel, strides=1, padding="SAME"))
        return tf.nn.relu(y + x)

    return lambda: block(data).numpy()


def onednn_on() -> bool:
    """Whether TensorFlow's oneDNN kernels are on in this process."""
    return os.environ.get(ONEDNN_SWITCH, "1").strip().lower() not in ("0", "false")


@functools.cache
def warn_if_onednn_off() -> None:
    """Once per process: a warning where oneDNN's kernels are switched off."""
    if not onednn_on():
        log.warning("%s=%s in this process's environment: TensorFlow's oneDNN kernels are off, and the job runs at "
                    "about 0.6x its speed (bfloat16 slower still); unset it", ONEDNN_SWITCH, os.environ[ONEDNN_SWITCH])


def cpu_description() -> str:
    """The CPU's model name, which of the flags that decide bfloat16's speed it has, and whether
    TensorFlow's oneDNN kernels are on."""
    onednn = "oneDNN on" if onednn_on() else f"oneDNN off ({ONEDNN_SWITCH}={os.environ[ONEDNN_SWITCH]})"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"unknown CPU (no /proc/cpuinfo); {onednn}"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return (f"{model}; " + ", ".join(f"{name} {'yes' if flag in flags else 'no'}" for flag, name in CPU_FLAGS.items())
            + f"; {onednn}")
