"""Writes ``flagged.png``: a smooth abstract picture (no real content) that open_nsfw scores
``nsfw``, made once by gradient ascent on the model's NSFW probability, for tests that need a
picture the model flags (the committed photos all score safe). The picture is a 16x16 grid of
colours, bilinearly enlarged to 256x256, so that it keeps its score through JPEG, resizing and
video compression. From the repository's root:

    python tests/corpus/generated/make_flagged.py
"""

import io
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from nsfw_scan.model.pictures.preprocess import load_image

from nsfw_scan.model.pictures.yahoo_steps import MEAN_BGR
from nsfw_scan.model.engines import TensorFlowScorer

HERE = Path(__file__).resolve().parent


def main() -> None:
    scorer = TensorFlowScorer()
    model = scorer.model
    grid = tf.Variable(tf.random.stateless_normal((1, 16, 16, 3), seed=(7, 11)) * 0.5)
    optimizer = tf.keras.optimizers.Adam(0.05)
    for step in range(400):
        with tf.GradientTape() as tape:
            rgb = tf.sigmoid(tf.image.resize(grid, (256, 256), method="bilinear")) * 255.0
            crop = rgb[:, 16:240, 16:240, ::-1] - MEAN_BGR
            probability = model(crop, training=False)[:, 0, 0, 1]
            loss = -tf.math.log(probability + 1e-6)
        optimizer.apply_gradients([(tape.gradient(loss, grid), grid)])
        if step % 50 == 0:
            print(step, float(probability[0]))
    pixels = np.asarray(tf.sigmoid(tf.image.resize(grid, (256, 256), method="bilinear"))[0] * 255.0).round()
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    score = float(scorer.score(load_image(buffer.getvalue()).array[None])[0])
    print("score through Yahoo's steps:", score)
    assert score >= 0.9, score
    (HERE / "flagged.png").write_bytes(buffer.getvalue())


if __name__ == "__main__":
    main()
