"""What a worker process makes once and shares among its threads and DoFn instances: one value
per key, kept for the life of the process (the reading and decoding pools, the byte budget,
the BLAS limit, the hash list, the S3 clients). No Beam here: ``nsfw-scan score`` uses it too."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_values: dict[Hashable, object] = {}
_making: dict[Hashable, threading.Lock] = {}
_lock = threading.Lock()


def once_per_process(key: Hashable, make: Callable[[], T]) -> T:
    """This process's value of ``key``: ``make()`` at the first call, the same value after.
    Callers of one key wait while it is made (callers of others do not); if ``make`` raises,
    nothing is kept and the next call tries again."""
    with _lock:
        if key in _values:
            return _values[key]
        making = _making.setdefault(key, threading.Lock())
    with making:
        with _lock:
            if key in _values:
                return _values[key]
        value = make()
        with _lock:
            _values[key] = value
            _making.pop(key, None)
        return value
