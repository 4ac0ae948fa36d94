"""Why an image got no score: the error kinds, defined once.

A failed row carries its kind as a field (``error_kind``) beside a readable message (``error``);
nothing reads the kind back out of the message. The README's schema lists the same kinds.
"""

from __future__ import annotations

ERROR_KINDS = {
    "not_found": "the URI names no file (deleted upload, wrong path)",
    "not_a_file": "the URI names a folder",
    "empty": "the file has no bytes",
    "too_large": "the file is over limits.max_bytes, or too large to decode in memory",
    "unsupported_scheme": "no Beam filesystem for the URI's scheme",
    "bad_uri": "a URI that can never be read: an http(s) URL with raw spaces or control characters, a URL without a host",
    "read_error": "the bytes could not be read (permissions, network), also after retries",
    "timeout": "the store or server did not answer in time, also after retries",
    "blocked_address": "an http(s) URL whose host resolves to a private, loopback or other non-public address",
    "undecodable": "not an image Pillow can read, or broken inside",
    "truncated": "the image data ends early",
    "decompression_bomb": "the header declares more than limits.max_pixels pixels",
    "unsupported_format": "a format refused on purpose (PostScript/EPS would run Ghostscript), or a video without the video extra",
    "no_video": "a video file without a video stream (audio only)",
    "bad_manifest_line": "the manifest line itself is malformed (wrong field count, broken JSON, no URI)",
}
BAD_MANIFEST_LINE = "bad_manifest_line"
# Kinds that can pass: the same URI read again may work once the network, the server or a setting
# has changed. For each, what the user can change first.
RETRYABLE = {
    "blocked_address": "open the network in http.allow_networks if it is yours",
    "timeout": "raise reading.timeout_s or reading.attempts if the server is slow",
    "read_error": "check permissions and the server (5xx answers and throttling pass)",
}


class Unscorable(Exception):
    """A file that cannot be scored, whatever the step that found out (reading, decoding).
    ``kind`` (one of :data:`ERROR_KINDS`) names the class of failure for reports; ``str()``
    gives ``"<kind>: <message>"`` for people."""

    def __init__(self, kind: str, message: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}; add it to ERROR_KINDS")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class UsageError(Exception):
    """A failure that is the user's to fix (a flag, a configuration, a manifest, an output folder,
    the weights' install): the message names the thing and says what to do. The command line
    prints it on one line, without a traceback."""


class JobFailed(Exception):
    """A job that failed on its engine (a cluster): the message gives the engine's reason, what
    the run kept and what to do. The command line prints it on one line."""


def printable(text: str, limit: int | None = None) -> str:
    """``text`` from an input (a label, a URI), safe to print on a console, in a one-line message
    or a CSV cell: every character that is not printable (control characters such as ESC, NUL
    and line breaks, Unicode's format characters that reorder text) as its Python escape
    (``\\x1b``, ``\\n``, ``\\u202e``); with ``limit``, only its first ``limit`` characters, and
    ``...``."""
    cut = limit is not None and len(text) > limit
    text = text[:limit] if cut else text
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text + "..." if cut else text


def describe(exc: BaseException) -> str:
    """An exception as one short line of text, for an error message."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
