"""Console logging: our own progress lines, without the noise of libraries' start-up messages.

By default the command is quiet: Python loggers of other libraries show warnings and errors
only, Beam's worker-side tracebacks are left to the one-line error the command prints, and
what C libraries write straight to the process's standard error (TensorFlow's and absl's
start-up lines, oneDNN, libtiff's decoder messages — the rows already say what was wrong
with an image) goes to /dev/null, while Python's ``sys.stderr`` keeps the terminal.
``--verbose`` shows all of it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

from ..storage.compat import worker_log_relay

# Messages Beam logs on every run that say nothing about the job (Beam's memory probe needs
# torch to be installed; the apitools note is about BigQuery, which the job does not use), and
# TensorFlow's retracing warning: every model load (one per part with --partitions) traces the
# model's functions once for the new model, which TensorFlow counts as retracing the same
# function from the fifth load on (their input signature leaves the batch size open, so no
# batch retraces them).
NOISE = (
    "Resource module is not available for current platform",
    "apitools not found",
    "triggered tf.function retracing",
)
# Quiet unless --verbose: Beam's SDK worker logs each failing bundle with its traceback (the
# command reports the failure itself, in one line); a job server Beam starts for Flink or Spark
# logs "Waiting for grpc channel to be ready" while it starts; Pillow logs what it finds wrong
# in a file (the file's row says it).
QUIET_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.worker", "apache_beam.runners.portability",
                 "apache_beam.utils.subprocess_server", "PIL")


# Beam's local runner in ``multi_processing`` mode relays its worker processes' log records
# through one logger of its own (``storage/compat.py``'s ``worker_log_relay``), each as the text
# of a protobuf ("Worker: severity: INFO ... message: "..." ...").
_WORKER_PROGRESS = re.compile(r'message: "(?P<line>(?:part \d+ of \d+: )?(?:(?P<progress>progress: )|\d+ rows to write )'
                              r'[^"\\]*)"')


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NOISE)


def silence_native_stderr() -> None:
    """Point file descriptor 2 at /dev/null; Python's ``sys.stderr`` (and every logging
    handler writing to it) moves to a copy of the original descriptor. Child processes
    inherit the silence."""
    if getattr(silence_native_stderr, "done", False):
        return
    try:
        sys.stderr.flush()
        original = sys.stderr
        terminal = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except (OSError, AttributeError, ValueError):  # no real descriptor (e.g. embedded)
        return
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=getattr(original, "encoding", None) or "utf-8",
                           errors="backslashreplace")
    for logger in [logging.getLogger(), *(known for known in logging.Logger.manager.loggerDict.values()
                                          if isinstance(known, logging.Logger))]:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                handler.setStream(sys.stderr)
    silence_native_stderr.done = True


class _RelayWorkerProgress(logging.Handler):
    """Progress lines of worker processes, as our own lines (the rest of what they log stays
    with the relay, shown with --verbose)."""

    def __init__(self):
        super().__init__()
        self._announced = set()  # each worker says how many rows the run writes; once is enough

    def emit(self, record: logging.LogRecord) -> None:
        match = _WORKER_PROGRESS.search(record.getMessage())
        if not match:
            return
        if not match["progress"]:
            if match["line"] in self._announced:
                return
            self._announced.add(match["line"])
        logging.getLogger("nsfw_scan.worker").info("%s", match["line"])


def configure_logging(verbose: bool = False, quiet_native: bool = False) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
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
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.CRITICAL)
    relay = worker_log_relay()
    if not any(isinstance(h, _RelayWorkerProgress) for h in relay.handlers):
        relay.addHandler(_RelayWorkerProgress())
    relay.setLevel(logging.NOTSET if verbose else logging.INFO)
    relay.propagate = verbose
    if not verbose:  # Pillow also warns about damaged files ("Truncated File Read")
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    if quiet_native and not verbose:
        silence_native_stderr()
