"""What a file is, from its first bytes: the signatures of the formats users hand us by mistake
or damaged (images, videos, archives, documents), for messages that name what the file is."""

from __future__ import annotations

# (offset, bytes at that offset, what the file is)
SIGNATURES = (
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (8, b"WEBP", "a WebP image"),
    (8, b"AVI ", "an AVI video"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    # ISO media files: the image brands (stills and image sequences) before the video ones
    *((4, b"ftyp" + brand, "a HEIC image") for brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx",
                                                        b"hevm", b"hevs")),
    (4, b"ftypmif1", "a HEIF image"),
    (4, b"ftypmsf1", "a HEIF image"),
    (4, b"ftypavif", "an AVIF image"),
    (4, b"ftypavis", "an AVIF image"),
    (4, b"ftypqt", "a QuickTime video"),
    (4, b"ftyp", "an MP4 video"),
    (4, b"moov", "a QuickTime video"),
    (4, b"mdat", "a QuickTime video"),
    (4, b"wide", "a QuickTime video"),
    (0, b"\x1a\x45\xdf\xa3", "a WebM/Matroska video"),
    (0, b"BM", "a BMP image"),
    (0, b"%PDF", "a PDF document"),
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"\x1f\x8b", "gzip-compressed data"),
    (0, b"PAR1", "a Parquet file"),
)
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def is_image(what: str) -> bool:
    """Whether ``what`` (as :func:`signature_of` names it) is an image format."""
    return what.endswith(" image")


def is_video(what: str) -> bool:
    """Whether ``what`` (as :func:`signature_of` names it) is a video format."""
    return what.endswith(" video")


def signature_of(head: bytes) -> str | None:
    """What the bytes ``head`` (a file's first bytes) start like, e.g. ``"a JPEG image"``;
    ``None`` for none of the known formats."""
    for offset, magic, what in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return what
    return None


def binary_kind(head: bytes) -> str | None:
    """What a file that should be text is instead, from its first bytes (about 1 KiB): a known
    binary format, UTF-16 text, or other binary data (over a tenth of its bytes control
    characters other than tab and line ends); ``None`` for anything that could be text, text in
    another 8-bit encoding and text with a few damaged bytes included."""
    if head.startswith(UTF16_BOMS):
        return "UTF-16 text"
    what = signature_of(head)
    if what is not None and (b"\x00" in head or not _is_ascii(head[:16])):
        return what
    controls = sum(byte < 0x20 and byte not in b"\t\n\r" for byte in head)
    if not head or controls <= len(head) / 10:
        return None
    # ASCII text in UTF-16 without a byte-order mark: a NUL in every other byte
    if max(head[0::2].count(0), head[1::2].count(0)) >= 0.4 * len(head) / 2:
        return "UTF-16 text"
    return "binary data"


def _is_ascii(data: bytes) -> bool:
    return all(byte < 0x80 for byte in data)
