"""A labelled sample like a team's review backlog, made from what the repository holds: NSFW
content alone and as an inset in a safe scene, safe pictures, multi-scene safe clips and clips
with a short NSFW insert.

- **NSFW content**: pictures open_nsfw scores nsfw, made by gradient ascent on its NSFW
  probability as ``tests/corpus/generated/flagged.png`` was, but robust to being shown inside a
  scene (:func:`flagged_pictures`; no real content), in variants of colour and aspect. Making
  them takes a few minutes: they are kept in ``cache`` when one is given.
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
STEPS = 150  # of gradient ascent per picture
INSET_SIDES = (0.25, 0.6)  # an inset's side, as a share of its scene's shorter side


@dataclasses.dataclass(frozen=True)
class Item:
    name: str  # file name, with the extension of its format
    nsfw: bool  # the label
    kind: str  # "nsfw", "inset 0.42", "safe", "clip", "clip insert at 31.5 s"
    data: bytes


def flagged_pictures(count: int, seed: int = 0) -> list[Image.Image]:
    """``count`` pictures open_nsfw scores nsfw, made as ``flagged.png`` was (gradient ascent on
    its NSFW probability over a grid of colours, 8x8 to 32x32 by turns, enlarged to 256x256) but
    robust as real content is: during the ascent each is scored whole a quarter of the time and
    otherwise shown at 45-100% of the view's side at a random place over a safe scene.
    (``flagged.png`` itself scores safe unless it fills 90% of a view.)"""
    import tensorflow as tf

    from nsfw_scan.model.network import build_resnet50_thin
    from nsfw_scan.model.pictures.yahoo_steps import MEAN_BGR
    from nsfw_scan.model.weights import load_into, load_weights

    model = build_resnet50_thin()  # on TensorFlow's default threads: every core
    load_into(model, load_weights().weights)
    backgrounds = np.stack([np.asarray(source.resize((256, 256), Image.Resampling.BILINEAR), np.float32)
                            for source in scene_sources()])
    by_size = {}
    for turn, grid_size in enumerate((8, 16, 32)):
        wanted = len(range(turn, count, 3))
        if not wanted:
            continue
        grid = tf.Variable(tf.random.stateless_normal((wanted, grid_size, grid_size, 3), seed=(seed, grid_size)) * 0.8)
        optimizer = tf.keras.optimizers.Adam(0.05)
        for step in range(STEPS):
            rng = np.random.default_rng((seed, grid_size, step))
            side = rng.uniform(0.45, 1.0, (wanted, 1))
            corner = rng.uniform(0, 1, (wanted, 2)) * (1 - side)
            boxes = np.concatenate([-corner / side, (1 - corner) / side], axis=1).astype(np.float32)
            boxes[rng.random(wanted) < 0.25] = (0.0, 0.0, 1.0, 1.0)
            scenes = backgrounds[rng.integers(len(backgrounds), size=wanted)]
            with tf.GradientTape() as tape:
                rgb = tf.sigmoid(tf.image.resize(grid, (256, 256), method="bilinear")) * 255.0
                placed = tf.image.crop_and_resize(rgb, boxes, tf.range(wanted), (256, 256))
                mask = tf.image.crop_and_resize(tf.ones_like(rgb[..., :1]), boxes, tf.range(wanted), (256, 256))
                shown = placed * mask + scenes * (1 - mask)
                probability = model(shown[:, 16:240, 16:240, ::-1] - MEAN_BGR, training=False)[:, 0, 0, 1]
                loss = -tf.reduce_sum(tf.math.log(probability + 1e-6))
            optimizer.apply_gradients([(tape.gradient(loss, grid), grid)])
        pixels = np.asarray(tf.sigmoid(tf.image.resize(grid, (256, 256), method="bilinear")) * 255.0).round()
        by_size[turn] = [Image.fromarray(p.astype(np.uint8)) for p in pixels]
    return [by_size[i % 3][i // 3] for i in range(count)]


def variants(pictures: list[Image.Image], count: int, seed: int = 0) -> list[Image.Image]:
    """``count`` variants of ``pictures`` (by turns): brightness, contrast and colour changed by
    up to 20% and the aspect by up to a third, at random."""
    rng = np.random.default_rng((seed, 1))
    made = []
    for i in range(count):
        picture = pictures[i % len(pictures)]
        for change in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            picture = change(picture).enhance(float(rng.uniform(0.8, 1.2)))
        aspect = float(rng.uniform(0.75, 1.33))
        made.append(picture.resize((round(256 * aspect), 256), Image.Resampling.BILINEAR))
    return made


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


def made_content(count: int, seed: int, cache: Path | None) -> list[Image.Image]:
    """:func:`flagged_pictures`, kept in (and taken from) ``cache`` as PNGs."""
    folder = cache / f"flagged-{count}-{seed}-{STEPS}" if cache is not None else None
    if folder is not None and folder.is_dir():
        paths = sorted(folder.glob("*.png"))
        if len(paths) == count:
            return [Image.open(path).convert("RGB") for path in paths]
    pictures = flagged_pictures(count, seed)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for i, picture in enumerate(pictures):
            picture.save(folder / f"{i:03d}.png")
    return pictures


def make_sample(pictures_nsfw: int = 40, safe: int = 120, clips: int = 10, clip_s: int = 60,
                seed: int = 0, insert_s: float = 1.5, distinct: int = 12, cache: Path | None = None) -> list[Item]:
    """Half of ``pictures_nsfw`` as content alone (at 256-1024 px), half as insets at 25-60% of a
    safe scene; ``safe`` safe pictures; ``clips`` multi-scene safe clips of ``clip_s`` seconds
    and as many with an NSFW insert of ``insert_s`` seconds. The NSFW content: ``distinct``
    pictures (:func:`flagged_pictures`) in variants (:func:`variants`)."""
    rng = np.random.default_rng(seed)
    content = variants(made_content(distinct, seed, cache), pictures_nsfw + clips, seed)
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
