"""A labelled sample like a team's review backlog, made from what the repository holds: NSFW
content alone and as an inset in a safe scene, safe pictures, multi-scene safe clips and clips
with a short NSFW insert.

- **NSFW content**: variants of the generated flagged picture (``tests/corpus/generated/
  flagged.png``, which open_nsfw scores 0.999; no real content): colours and aspect changed.
- **Safe scenes**: the committed photos (``tests/corpus/real``, and ``../shared/corpus/real``
  where it exists) and the project's photo-like and screenshot-like generated pictures, cropped,
  scaled and flipped at random.
- **Insets**: NSFW content pasted at 25-60% of a safe scene's side, anywhere in it.
- **Clips** (H.264, 1 s per scene): ``scenes`` different safe pictures, or the same with NSFW
  content shown for ``insert_s`` seconds at a random time.

Everything is drawn from one seed: the same arguments give the same files.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parent.parent
PHOTO_FOLDERS = (ROOT / "tests" / "corpus" / "real", ROOT.parent / "shared" / "corpus" / "real")
FLAGGED = ROOT / "tests" / "corpus" / "generated" / "flagged.png"
INSET_SIDES = (0.25, 0.6)  # an inset's side, as a share of its scene's shorter side


@dataclasses.dataclass(frozen=True)
class Item:
    name: str  # file name, with the extension of its format
    nsfw: bool  # the label
    kind: str  # "nsfw", "inset 0.42", "safe", "clip", "clip insert at 31.5 s"
    data: bytes


def flagged_pictures(count: int, seed: int = 0) -> list[Image.Image]:
    """``count`` variants of ``tests/corpus/generated/flagged.png``, the picture open_nsfw scores
    nsfw (0.999; no real content): its brightness, contrast and colour changed by up to 20% and
    its aspect by up to a third, at random. (Like any picture made by gradient ascent it is
    fragile to crops, turns and flips, which real content is not: those are left out.)"""
    rng = np.random.default_rng((seed, 1))
    with Image.open(FLAGGED) as image:
        flagged = image.convert("RGB")
    pictures = []
    for _ in range(count):
        picture = flagged
        for change in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            picture = change(picture).enhance(float(rng.uniform(0.8, 1.2)))
        aspect = float(rng.uniform(0.75, 1.33))
        pictures.append(picture.resize((round(256 * aspect), 256), Image.Resampling.BILINEAR))
    return pictures


def scene_sources() -> list[Image.Image]:
    """The safe pictures scenes are cut from: the committed photos and generated ones."""
    from nsfw_scan.pipeline.demo import _photo, _screenshot

    photos = []
    for folder in PHOTO_FOLDERS:
        for path in sorted(folder.glob("*")) if folder.is_dir() else ():
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                with Image.open(path) as image:
                    photos.append(image.convert("RGB"))
    photos += [_photo((1024, 768), 100 + i) for i in range(4)] + [_screenshot((1024, 768), 200 + i) for i in range(2)]
    return photos


def scene(sources: list[Image.Image], rng: np.random.Generator) -> Image.Image:
    """A safe picture: a random crop (40-100% of each side) of a source, scaled to 320-1280 px
    wide, flipped half the time."""
    source = sources[rng.integers(len(sources))]
    w, h = source.size
    cw, ch = int(w * rng.uniform(0.4, 1.0)), int(h * rng.uniform(0.4, 1.0))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    picture = source.crop((left, top, left + cw, top + ch))
    width = int(rng.integers(320, 1281))
    picture = picture.resize((width, max(32, round(ch * width / cw))), Image.Resampling.BILINEAR)
    return ImageOps.mirror(picture) if rng.random() < 0.5 else picture


def with_inset(background: Image.Image, content: Image.Image, side: float, rng: np.random.Generator) -> Image.Image:
    """``content`` pasted into ``background`` at ``side`` of its shorter side, at a random place."""
    height = max(16, round(min(background.size) * side))
    width = min(background.width, round(height * content.width / content.height))
    inset = content.resize((width, height), Image.Resampling.BILINEAR)
    picture = background.copy()
    picture.paste(inset, (int(rng.integers(0, background.width - width + 1)),
                          int(rng.integers(0, background.height - height + 1))))
    return picture


def encoded(picture: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """JPEG at quality 75-95 mostly, PNG a fifth of the time."""
    buffer = io.BytesIO()
    if rng.random() < 0.2:
        picture.save(buffer, "PNG")
        return buffer.getvalue(), "png"
    picture.save(buffer, "JPEG", quality=int(rng.integers(75, 96)))
    return buffer.getvalue(), "jpg"


def clip(scenes: list[Image.Image], insert: Image.Image | None = None, insert_at: float = 0.0,
         insert_s: float = 1.5, fps: int = 10, size: tuple[int, int] = (640, 360)) -> bytes:
    """An H.264 clip showing each of ``scenes`` for a second; with ``insert``, that picture
    instead from ``insert_at`` for ``insert_s`` seconds."""
    import av

    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        with av.open(f.name, mode="w") as container:
            stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            frames = [s.resize(size, Image.Resampling.BILINEAR) for s in scenes]
            shown = insert.resize(size, Image.Resampling.BILINEAR) if insert is not None else None
            for i in range(len(scenes) * fps):
                seconds = i / fps
                picture = shown if shown is not None and insert_at <= seconds < insert_at + insert_s else frames[i // fps]
                frame = av.VideoFrame.from_image(picture)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return Path(f.name).read_bytes()


def make_sample(pictures_nsfw: int = 40, safe: int = 120, clips: int = 10, clip_s: int = 60,
                seed: int = 0, insert_s: float = 1.5) -> list[Item]:
    """Half of ``pictures_nsfw`` as content alone (at 256-1024 px), half as insets at 25-60% of a
    safe scene; ``safe`` safe pictures; ``clips`` multi-scene safe clips of ``clip_s`` seconds
    and as many with an NSFW insert of ``insert_s`` seconds."""
    rng = np.random.default_rng(seed)
    content = flagged_pictures(pictures_nsfw + clips, seed)
    sources = scene_sources()
    items = []
    for i in range(pictures_nsfw):
        picture = content[i]
        if i % 2 == 0:
            scale = float(rng.uniform(1, 4))
            data, ext = encoded(picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                               Image.Resampling.BILINEAR), rng)
            items.append(Item(f"nsfw_{i:03d}.{ext}", True, "nsfw", data))
        else:
            side = float(rng.uniform(*INSET_SIDES))
            data, ext = encoded(with_inset(scene(sources, rng), picture, side, rng), rng)
            items.append(Item(f"inset_{i:03d}.{ext}", True, f"inset {side:.2f}", data))
    for i in range(safe):
        data, ext = encoded(scene(sources, rng), rng)
        items.append(Item(f"safe_{i:03d}.{ext}", False, "safe", data))
    for i in range(clips):
        scenes = [scene(sources, rng) for _ in range(clip_s)]
        items.append(Item(f"clip_safe_{i:02d}.mp4", False, "clip", clip(scenes)))
        at = round(float(rng.uniform(1, clip_s - insert_s - 1)), 1)
        items.append(Item(f"clip_insert_{i:02d}.mp4", True, f"clip insert at {at} s",
                          clip(scenes, content[pictures_nsfw + i], at, insert_s)))
    return items


def write_sample(items: list[Item], folder: Path) -> Path:
    """The items as files in ``folder``, a manifest (``manifest.txt``) and a labels file
    (``labels.csv``: uri,label) beside them; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, labels = [], ["uri,label"]
    for item in items:
        path = folder / item.name
        path.write_bytes(item.data)
        lines.append(str(path))
        labels.append(f"{path},{'nsfw' if item.nsfw else 'safe'}")
    (folder / "labels.csv").write_text("\n".join(labels) + "\n")
    manifest = folder / "manifest.txt"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
