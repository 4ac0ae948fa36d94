"""Console logging: our own progress lines, without the noise of libraries' start-up messages."""

from __future__ import annotations

import logging
import os

# Messages Beam logs on every run that say nothing about the job (Beam's memory probe needs
# torch to be installed; the apitools note is about BigQuery, which the job does not use).
NOISE = (
    "Resource module is not available for current platform",
    "apitools not found",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NOISE)


def configure_logging(verbose: bool = False) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = logging.getLogger()
    root.addFilter(_DropNoise())
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    for handler in root.handlers:
        handler.addFilter(_DropNoise())
    ours = logging.getLogger("nsfw_scan")
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        ours.addHandler(handler)
        ours.propagate = False
