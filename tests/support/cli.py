"""Running the installed ``nsfw-scan`` command as a user would."""

from __future__ import annotations

import subprocess
import sys


def nsfw_scan(*args, cwd=None, timeout=600, python=sys.executable) -> subprocess.CompletedProcess:
    """``nsfw-scan ARGS`` as installed in ``python``'s environment (by default this one's)."""
    return subprocess.run(
        [str(python), "-m", "nsfw_scan.pipeline.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
    )
