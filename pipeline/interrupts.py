"""Ctrl-C (SIGINT) and SIGTERM during a command: the run stops where it is, cleans up as after
any failure (its unfinished folders and its lock go), and says in one line what it kept.

The first signal raises :class:`KeyboardInterrupt` in the main thread wherever it is (Beam may
wrap it in an error of its own; :func:`received` tells either way); later ones are ignored, so
that a second Ctrl-C cannot cut the clean-up short. The exit status is 128 + the signal's
number, as a shell reports a process the signal ended: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(Exception):
    """A run stopped by a signal after cleaning up; ``kept`` says what of it stays."""

    def __init__(self, kept: str):
        super().__init__(kept)
        self.kept = kept


def _handle(signum, frame) -> None:
    if _received:
        return  # the clean-up is under way
    _received.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def catch_signals() -> dict:
    """From now on SIGINT and SIGTERM stop the command through :func:`_handle`; returns the
    handlers they had, for :func:`restore`."""
    _received.clear()
    return {signum: signal.signal(signum, _handle) for signum in SIGNALS}


def restore(handlers: dict) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def received() -> int | None:
    """The signal that stopped the command, if one did."""
    return _received[0] if _received else None


def exit_status(signum: int) -> int:
    return 128 + signum


def name(signum: int) -> str:
    return signal.Signals(signum).name
