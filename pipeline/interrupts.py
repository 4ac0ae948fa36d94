"""Ctrl-C (SIGINT) and SIGTERM during a command: the run stops where it is, cleans up as after
any failure (its unfinished folders and its lock go), and says in one line what it kept.

A signal raises :class:`KeyboardInterrupt` in the main thread wherever it is (Beam may wrap it
in an error of its own; :func:`received` tells either way). Library code that catches it and
carries on (a step's clean-up, a callback) cannot swallow the stop: until the command has
acknowledged it (:func:`acknowledge`, where its clean-up starts), it is raised again every
``REPEAT_S`` seconds. After that, further signals are ignored, so that a second Ctrl-C cannot
cut the clean-up short. The exit status is 128 + the signal's number, as a shell reports a
process the signal ended: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import _thread
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_S = 1.0
_received: list[int] = []
_acknowledged = threading.Event()


class Interrupted(Exception):
    """A run stopped by a signal after cleaning up; ``kept`` says what of it stays."""

    def __init__(self, kept: str):
        super().__init__(kept)
        self.kept = kept


def _handle(signum, frame) -> None:
    if _acknowledged.is_set():
        return  # the clean-up is under way
    if not _received:
        _received.append(signum)
        threading.Thread(target=_repeat, name="nsfw-scan-interrupt", daemon=True).start()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _repeat() -> None:
    while not _acknowledged.wait(REPEAT_S):
        _thread.interrupt_main(_received[0])


def catch_signals() -> dict:
    """From now on SIGINT and SIGTERM stop the command through :func:`_handle`; returns the
    handlers they had, for :func:`restore`."""
    _received.clear()
    _acknowledged.clear()
    return {signum: signal.signal(signum, _handle) for signum in SIGNALS}


def restore(handlers: dict) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def received() -> int | None:
    """The signal that stopped the command, if one did."""
    return _received[0] if _received else None


def acknowledge() -> int | None:
    """The command has seen the stop and cleans up: no signal interrupts it any more. Returns
    the signal, if one came."""
    if _received:
        _acknowledged.set()
    return received()


def exit_status(signum: int) -> int:
    return 128 + signum


def name(signum: int) -> str:
    return signal.Signals(signum).name
