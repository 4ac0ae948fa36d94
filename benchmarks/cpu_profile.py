"""Where a job's CPU goes, stage by stage: ``nsfw-scan run`` under a sampling profiler.

Two sources, because TensorFlow computes on threads of its own that Python never sees:
- ``py-spy`` samples the job's Python threads (the worker thread, the reading and decoding
  pools). Each sample is named by the innermost frame that matches a stage in ``STAGES``; a
  sample with none is Beam's own machinery and the job's other steps. Idle threads are not
  sampled, so samples are CPU time.
- The kernel's CPU time of every thread of the job's process (``/proc/PID/task/TID/stat``),
  polled through the run. The threads py-spy never sampled are TensorFlow's (and libraries'
  like it): their CPU counts as the model's.

The steady state is the first to the last scored row (the rows' ``scored_at``). CPU per image
over it: the Python threads' CPU split by their samples' shares, the other threads' CPU, and
the profiler's own CPU, and the cores left idle (cores x the steady state's wall time less
the process's and the profiler's CPU).
Samples taken while importing or loading the model, samples of a thread with no Python frame
(the interpreter starting and exiting), and samples of a thread blocked on a lock or a queue
are left out of the shares. The last are a thread pool's threads waiting for work: their
innermost frame is the standard library's line that blocks, and py-spy, which reads the job's
memory without pausing it, counts some of them as running.

Used by ``benchmarks/end_to_end.py``, which profiles the exact and the cascade job.
"""

from __future__ import annotations

import collections
import functools
import linecache
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from measure import WRAPPER

RATE = 50  # samples per second per thread
TICKS = os.sysconf("SC_CLK_TCK")

# (stage, frame pattern): a sample belongs to the stage of its innermost frame that matches
STAGES = [
    ("PDQ hash and matching", re.compile(r"[(/](pdq|hash_list|known_content)\.py:|\b_match \(transforms/read_and_decode\.py")),
    ("resize + JPEG + crop", re.compile(r"\b(resize|finish|network_input|tf_preprocess) \(model/pictures/"
                                        r"(preprocess|yahoo_steps)\.py")),
    ("decode", re.compile(r"\((model/pictures/preprocess|model/pictures/video|model/pictures/signatures)\.py:")),
    ("read and sha256", re.compile(r"\(storage/(read|parquet_files|s3read|http_reading|deadline)\.py:"
                                   r"|\b_read \(transforms/read_and_decode\.py"
                                   r"|\bRead\.of \(transforms/elements\.py")),
    ("model (calling thread)", re.compile(r"\(model/engines\.py:|tensorflow/|onnxruntime/")),
    ("Parquet writes", re.compile(r"\((transforms/write|storage/rows)\.py:|pyarrow/parquet")),
]
START_UP = [  # samples left out of the steady state's shares
    ("model load", re.compile(r"\b(load_timed|load_model) \(")),
    ("imports", re.compile(r"^_find_and_load \(|^_call_with_frames_removed \(")),
]
WAITING = "waiting on a lock or a queue"
BLOCKING = re.compile(r"\.acquire\(|\.get\(block=True\)")  # the standard library's lines that wait
OTHER = "Beam and the job's other steps"
MODEL_THREADS = "model (TensorFlow's threads)"
IDLE = "cores idle"
PROFILER = -1  # ThreadClock's key for the profiler's own CPU


NO_FRAMES = "no Python frame (interpreter start and exit)"


def stage_of(frames: list[str]) -> str:
    """The stage a sample's frames (outermost first) belong to."""
    if not frames:
        return NO_FRAMES
    for name, pattern in START_UP:
        if any(pattern.search(frame) for frame in frames):
            return name
    if _blocks(frames[-1]):
        return WAITING
    for frame in reversed(frames):
        for name, pattern in STAGES:
            if pattern.search(frame):
                return name
    return OTHER


@functools.cache
def _blocks(frame: str) -> bool:
    """Whether ``frame`` (py-spy's ``function (path:line)``) is at a standard library line that
    waits."""
    match = re.fullmatch(r".* \((.+):(\d+)\)", frame)
    if not match:
        return False
    line = linecache.getline(os.path.join(sysconfig.get_paths()["stdlib"], match.group(1)), int(match.group(2)))
    return bool(BLOCKING.search(line))


def read_samples(raw: Path) -> tuple[collections.Counter, set[int]]:
    """Samples per stage, and the thread ids sampled, from py-spy's ``--format raw --threads``."""
    per_stage, threads = collections.Counter(), set()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        head, *frames = stack.split(";")
        match = re.match(r"thread \((0x[0-9a-f]+|\d+)\)", head)
        if match:
            threads.add(int(match.group(1), 0))
        per_stage[stage_of(frames)] += int(count)
    return per_stage, threads


def _cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class ThreadClock:
    """Polls the CPU time of every thread of a process until it exits: ``series`` holds
    ``(time.time(), {tid: cpu seconds})``, and under the key ``PROFILER`` the CPU of the
    ``profiler`` process (py-spy's own, which takes the same cores)."""

    def __init__(self, pid: int, profiler: int, every: float = 0.1):
        self.series: list[tuple[float, dict[int, float]]] = []
        self._pid, self._profiler, self._every = pid, profiler, every
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        task = Path(f"/proc/{self._pid}/task")
        while task.exists():
            now, cpu = time.time(), {}
            for entry in list(task.glob("*")):
                try:
                    cpu[int(entry.name)] = _cpu_seconds(entry / "stat")
                except OSError:
                    continue
            try:
                cpu[PROFILER] = _cpu_seconds(Path(f"/proc/{self._profiler}/stat"))
            except OSError:
                pass
            if cpu:
                self.series.append((now, cpu))
            time.sleep(self._every)

    def join(self):
        self._thread.join()

    def at(self, moment: float) -> dict[int, float]:
        """Each thread's CPU seconds at ``moment`` (the last poll at or before it; a thread
        that had ended keeps its last value)."""
        seen: dict[int, float] = {}
        for when, cpu in self.series:
            if when > moment and seen:
                break
            seen.update(cpu)
        return seen


@dataclass
class Profile:
    ms_per_image: dict[str, float]  # CPU ms per image in the steady state, by stage, and IDLE
    images: int
    steady_seconds: float
    samples: int


def _child_of(pid: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            text = children.read_text().split()
            if text:
                return int(text[0])
        time.sleep(0.01)
    raise RuntimeError("py-spy did not start the job")


def py_spy() -> str | None:
    """py-spy's program (``pip install -e '.[bench]'``), or ``None``."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def profiled_run(args: list, steady_window, work: Path, cores: int) -> Profile:
    """Runs ``nsfw-scan *args`` under py-spy; ``steady_window()`` returns, after the run, the
    first and last scored row's times (``time.time()``) and the number of images scored."""
    raw = work / f"profile-{time.monotonic_ns()}.txt"
    spy = subprocess.Popen([py_spy(), "record", "--threads", "--nonblocking", "--format", "raw", "--rate", str(RATE),
                            "--output", str(raw), "--", sys.executable, "-c", WRAPPER, *map(str, args)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    clock = ThreadClock(_child_of(spy.pid), spy.pid)
    _, errors = spy.communicate()
    clock.join()
    if spy.returncode != 0 or not raw.exists():
        sys.exit(f"the profiled run failed:\n{errors[-3000:]}")
    per_stage, python_threads = read_samples(raw)
    first, last, images = steady_window()
    start, end = clock.at(first), clock.at(last)
    used = {tid: end.get(tid, 0.0) - start.get(tid, 0.0) for tid in end}
    profiler_cpu = used.pop(PROFILER, 0.0)
    python_cpu = sum(cpu for tid, cpu in used.items() if tid in python_threads)
    other_cpu = sum(cpu for tid, cpu in used.items() if tid not in python_threads)
    steady = {name: count for name, count in per_stage.items() if name not in {*dict(START_UP), NO_FRAMES, WAITING}}
    total = sum(steady.values()) or 1
    seconds = {name: python_cpu * count / total for name, count in steady.items()}
    seconds[MODEL_THREADS] = other_cpu
    seconds[PROFILER_COLUMN] = profiler_cpu
    seconds[IDLE] = max(0.0, cores * (last - first) - python_cpu - other_cpu - profiler_cpu)
    per_image = {name: value * 1000 / max(images, 1) for name, value in seconds.items()}
    return Profile(per_image, images, last - first, sum(per_stage.values()))


PROFILER_COLUMN = "the profiler (py-spy)"
COLUMNS = [name for name, _ in STAGES] + [MODEL_THREADS, OTHER, PROFILER_COLUMN, IDLE]


def print_profiles(profiles: dict[str, Profile], cores: int) -> None:
    """One row per profiled run: CPU ms per image by stage in the steady state."""
    print("| run | images | steady s | " + " | ".join(COLUMNS) + " | total core-ms per image | images/s |")
    print("|---|---|---|" + "---|" * (len(COLUMNS) + 2))
    for label, profile in profiles.items():
        ms = profile.ms_per_image
        total = sum(ms.values())
        print(f"| {label} | {profile.images} | {profile.steady_seconds:.1f} | "
              + " | ".join(f"{ms.get(name, 0.0):.1f}" for name in COLUMNS)
              + f" | {total:.1f} | {cores * 1000 / total:.1f} |")
