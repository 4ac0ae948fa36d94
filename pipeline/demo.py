"""``nsfw-scan demo``: build a small upload-like corpus offline, then run the job over it."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
from PIL import Image, ImageDraw


def _photo(size, seed):
    """A smooth, photo-like picture: colour gradients, blobs and sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 6.28)]
        image[..., c] = 128 + 90 * np.sin(fx * x / w * 6.28 + phase) * np.cos(fy * y / h * 6.28)
    image += rng.normal(0, 6, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _screenshot(size, seed):
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size[0], 48], fill=(40, 90, 160))
    for row in range(60, size[1] - 20, 28):
        width = int(rng.integers(size[0] // 4, size[0] - 40))
        draw.rectangle([20, row, 20 + width, row + 12], fill=(90, 90, 90))
    return image


def _encode(image, fmt, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def make_demo_corpus(directory: str) -> str:
    """Write images and ``manifest.csv`` (columns ``id``, ``uri``, ``uploader``); returns its path."""
    images = os.path.join(directory, "images")
    os.makedirs(images, exist_ok=True)
    files: dict[str, bytes] = {}
    for i, size in enumerate([(4000, 3000), (2304, 1728), (1600, 1200), (1024, 768), (640, 480), (320, 240)]):
        files[f"photo_{i}.jpg"] = _encode(_photo(size, i), "JPEG", quality=90)
    files["screenshot.png"] = _encode(_screenshot((1280, 800), 1), "PNG")
    files["thumbnail.webp"] = _encode(_photo((160, 120), 9), "WEBP")
    files["grayscale.png"] = _encode(_photo((500, 400), 10).convert("L"), "PNG")
    files["transparent.png"] = _encode(_photo((400, 400), 11).convert("RGBA"), "PNG")
    files["cmyk.jpg"] = _encode(_photo((600, 400), 12).convert("CMYK"), "JPEG")
    frames = [_photo((200, 200), 20 + k) for k in range(3)]
    files["animation.gif"] = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    files["truncated.jpg"] = files["photo_3.jpg"][:5000]
    files["empty.jpg"] = b""
    files["notes.jpg"] = b"this upload is a text file with an image extension\n"
    for name, data in files.items():
        with open(os.path.join(images, name), "wb") as f:
            f.write(data)

    manifest = os.path.join(directory, "manifest.csv")
    names = list(files) + ["deleted_before_scan.jpg", "photo_0.jpg"]  # a missing file, a duplicate
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "uri", "uploader"])
        for i, name in enumerate(names):
            writer.writerow([f"upload-{i:04d}", f"images/{name}", f"user{i % 4}"])
    return manifest
