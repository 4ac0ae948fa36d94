"""SavedModel export for TF Serving: written, loaded back, scoring real images."""

import numpy as np
import pytest
import tensorflow as tf

from nsfw_scan.model.pictures.preprocess import load_image
from support.cli import nsfw_scan
from support.corpus import REAL, reference

JPEGS = ["grace_hopper.jpg", "hubble_deep_field.jpg"]


@pytest.mark.parametrize("input_type", ["tensor", "image_bytes"])
def test_exported_savedmodel_scores_real_images(tmp_path, input_type, scorer):
    out = tmp_path / "savedmodel"
    result = nsfw_scan("export-savedmodel", out, "--input-type", input_type)
    assert result.returncode == 0, result.stderr
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    data = [(REAL / name).read_bytes() for name in JPEGS]
    if input_type == "tensor":
        batch = np.stack([load_image(d).array for d in data])
        scores = serve(images=tf.constant(batch))["nsfw_probability"].numpy()
        np.testing.assert_allclose(scores, scorer.score(batch), atol=1e-5)
    else:
        scores = serve(image_bytes=tf.constant(data))["nsfw_probability"].numpy()
    expected = reference("real")
    assert scores.shape == (len(JPEGS),)
    for name, score in zip(JPEGS, scores):
        assert abs(score - expected[name]) < 0.03


def test_export_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    result = nsfw_scan("export-savedmodel", tmp_path)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "user data"
