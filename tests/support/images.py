"""Test images made here from corpus photos: stills, animations (APNG, GIF), a rotated still
with its EXIF orientation, a 16-bit copy, an APNG with a broken frame."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from nsfw_scan.model.pictures.preprocess import load_image

from .corpus import REAL


def rgb(name: str, size=(512, 512)) -> Image.Image:
    return Image.open(REAL / name).convert("RGB").resize(size, Image.Resampling.BILINEAR)


def with_inset(scene: Image.Image, content: Image.Image, box) -> Image.Image:
    """``scene`` with ``content`` resized into ``box`` (left, top, right, bottom)."""
    scene = scene.copy()
    scene.paste(content.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.BILINEAR), box[:2])
    return scene


def encoded(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def still_score(scorer, image: Image.Image) -> float:
    """Yahoo's exact score of ``image`` saved as an 8-bit still PNG."""
    return float(scorer.score(load_image(encoded(image)).array[None])[0])


def apng(frames: list[Image.Image], duration=100) -> bytes:
    return encoded(frames[0], save_all=True, append_images=frames[1:], duration=duration, loop=0, disposal=0, blend=0)


def gif(frames: list[Image.Image], duration=100) -> bytes:
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)


def sideways(image: Image.Image) -> bytes:
    """``image`` stored rotated, with the orientation tag (8) that displays it upright."""
    exif = Image.Exif()
    exif[0x0112] = 8
    return encoded(image.transpose(Image.Transpose.ROTATE_270), exif=exif.tobytes())


def sixteen_bit(image: Image.Image) -> bytes:
    """``image`` as a 16-bit grayscale PNG holding the same picture as its 8-bit grayscale copy."""
    return encoded(Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257))


def corrupt_fdat(data: bytes, number: int) -> bytes:
    """The APNG ``data`` with the pixel data of its ``number``-th fdAT chunk (from 1) overwritten."""
    out, offset, seen = bytearray(data), 8, 0
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"fdAT":
            seen += 1
            if seen == number:
                start = offset + 12  # past the sequence number
                out[start:offset + 8 + length] = b"\xff" * (length - 4)
                return bytes(out)
        offset += 12 + length
    raise AssertionError("no such fdAT chunk")


def marked(image: Image.Image, i: int) -> Image.Image:
    """``image`` with one pixel changed, so that no frame equals the one before it (Pillow
    would merge equal neighbours into one)."""
    image = image.copy()
    image.putpixel((i % image.width, 0), (255 * (i % 2), 0, 0))
    return image


def png(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path, format="PNG")
    return str(path)


def pdq_cases() -> dict[str, bytes]:
    """Files whose reference PDQ hashes (``tests/corpus/reference/pdq.json``) were made by Meta's
    implementation (``tests/corpus/reference/make_pdq.py``): the committed photos as they are,
    and large JPEGs and PNGs made from them (which the cascade's first pass decodes at reduced
    scale), one of them stored sideways with the EXIF orientation that shows it upright."""
    cases = {name: (REAL / name).read_bytes() for name in sorted(p.name for p in REAL.iterdir())}
    for name, size, fmt in (("chelsea.png", (2706, 1800), "JPEG"), ("coffee.png", (3600, 2400), "JPEG"),
                            ("hubble_deep_field.jpg", (2000, 1744), "PNG"), ("coins.png", (1651, 1302), "JPEG")):
        image = Image.open(REAL / name).convert("RGB").resize(size, Image.Resampling.LANCZOS)
        options = {"quality": 90} if fmt == "JPEG" else {}
        cases[f"{name.split('.')[0]}-{size[0]}x{size[1]}.{fmt.lower()}"] = encoded(image, fmt, **options)
    upright = Image.open(REAL / "grace_hopper.jpg").convert("RGB").resize((1536, 1800), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x0112] = 6
    cases["grace_hopper-sideways.jpg"] = encoded(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90,
                                                 exif=exif.tobytes())
    return cases
