"""The one time limit of a read: the whole answer by a deadline."""

from __future__ import annotations

import time


class Deadline:
    """The time by which an answer must have arrived whole, ``seconds`` from now. Readers ask
    :meth:`left` before each wait (a socket read, the next chunk), so that a server that sends
    a byte now and then cannot stretch the answer past it."""

    def __init__(self, seconds: float, what: str):
        self.seconds = seconds
        self._what = what
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """The seconds left; past the deadline, a ``TimeoutError`` naming what was read."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self._what}: the answer took longer than {self.seconds:g} s")
        return left
