"""Export the scorer as a TensorFlow SavedModel for TF Serving.

``serving_default`` takes either
- ``tensor``: ``images``, float32 ``[N, 224, 224, 3]`` already preprocessed (BGR, mean-subtracted), or
- ``image_bytes``: ``image_bytes``, tf.string ``[N]`` of encoded images (TF Serving's JSON API
  carries them as ``{"b64": "..."}``), preprocessed in the graph by the ``tensorflow`` loader,
and returns ``nsfw_probability``, float32 ``[N]``.
"""

from __future__ import annotations

import tensorflow as tf

from .pictures.preprocess import tf_preprocess
from .scorer import INPUT_SHAPE

INPUT_TYPES = ("tensor", "image_bytes")


def export_savedmodel(model, directory: str, input_type: str = "tensor") -> None:
    if input_type not in INPUT_TYPES:
        raise ValueError(f"input type {input_type!r} is not one of {INPUT_TYPES}")
    module = tf.Module()
    module.model = model

    if input_type == "tensor":
        @tf.function(input_signature=[tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name="images")])
        def serve(images):
            return {"nsfw_probability": module.model(images, training=False)[:, 0, 0, 1]}
    else:
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
        def serve(image_bytes):
            images = tf.map_fn(
                tf_preprocess, image_bytes, fn_output_signature=tf.TensorSpec(INPUT_SHAPE, tf.float32)
            )
            return {"nsfw_probability": module.model(images, training=False)[:, 0, 0, 1]}

    module.serve = serve
    tf.saved_model.save(module, directory, signatures={"serving_default": serve})
