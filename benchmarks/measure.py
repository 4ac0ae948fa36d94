"""Running ``nsfw-scan`` in a child process and measuring its wall time and peak memory."""

from __future__ import annotations

import subprocess
import sys
import time

WRAPPER = (
    "import resource, runpy, sys; sys.argv = ['nsfw-scan'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('nsfw_scan.pipeline.cli', run_name='__main__')\n"
    "finally:\n"
    "    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    print('PEAK', own, kids, file=sys.stderr)\n"
)


def run_cli(*args: str, python: str = sys.executable) -> tuple[str, float, int]:
    """stdout, wall seconds, and peak RSS in MiB of the largest process (the job or a worker);
    ``python``: the interpreter (and so the nsfw-scan installation) to run it with."""
    started = time.monotonic()
    result = subprocess.run([python, "-c", WRAPPER, *map(str, args)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    # `score` exits 1 when some inputs were errors, which benchmarks may include
    if result.returncode != 0 and not (args[0] == "score" and result.returncode == 1):
        sys.exit(f"nsfw-scan {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    peak = max(int(v) for line in result.stderr.splitlines() if line.startswith("PEAK") for v in line.split()[1:])
    return result.stdout, seconds, peak // 1024
