"""ResNet50-thin ("resnet_50_1by2"), the open_nsfw network, as a Keras functional model.

The layout follows Yahoo's ``deploy.prototxt`` layer by layer. Batch-norm and scale layers are
folded into the convolution before them, so each ``Conv2D`` carries a bias and is named after the
Caffe convolution whose (folded) weights it holds: ``conv_1``,
``conv_stage{S}_block{B}_branch2{a,b,c}``, ``conv_stage{S}_block0_proj_shortcut``; the classifier
is ``fc_nsfw``. A weight reader therefore maps tensors to layers by name.

Caffe conventions kept here:
- explicit symmetric zero padding (3 for the 7x7 stem, 1 for 3x3 convolutions), inside the
  convolution op (:class:`CaffeConv2D`);
- the stem max-pool (3x3, stride 2, no padding) rounds its output size up, which is TensorFlow's
  ``same`` padding with the extra row/column at the bottom/right;
- strided bottleneck blocks put the stride on the first 1x1 convolution (``branch2a``) and on
  the projection shortcut.

Input: float32 NHWC ``[N, H, W, 3]``, BGR, mean-subtracted; Yahoo's view is 224x224. The network
is convolutional up to its 7x7 average pooling, and its classifier applies to each pooled
position: the output is softmax ``[N, (H - 224) / 32 + 1, (W - 224) / 32 + 1, 2]``, one
probability pair per 224x224 *window* of the input, at a stride of 32 pixels (a 224x224 input
has one window, the network as Yahoo ran it; a 448x448 one 8x8). Channel 1 is the NSFW
probability.
"""

from __future__ import annotations

import keras
from keras import layers

from .scorer import EXACT_PRECISION

# (stage index, blocks, (branch2a, branch2b, branch2c) filters, stride of the first block)
STAGES = (
    (0, 3, (32, 32, 128), 1),
    (1, 4, (64, 64, 256), 2),
    (2, 6, (128, 128, 512), 2),
    (3, 3, (256, 256, 1024), 2),
)


class CaffeConv2D(layers.Conv2D):
    """A convolution with Caffe's explicit symmetric zero padding, as one TensorFlow op.

    Keras' own Conv2D wraps the convolution in reshapes, which keeps TensorFlow from fusing
    convolution, bias and ReLU; this layer emits plain ``Conv2D`` + ``BiasAdd``."""

    def __init__(self, filters: int, kernel_size: int, pad: int = 0, **kwargs):
        kwargs.pop("padding", None)  # the padding is ``pad``, applied by the convolution itself
        super().__init__(filters, kernel_size, padding="valid", **kwargs)
        self.pad = pad

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.pad  # noqa: E731
        return super().compute_output_shape((n, grow(h), grow(w), c))

    def call(self, inputs):
        import tensorflow as tf

        p = self.pad
        padding = [[0, 0], [p, p], [p, p], [0, 0]] if p else "VALID"
        return tf.nn.bias_add(tf.nn.conv2d(inputs, self.kernel, strides=self.strides, padding=padding), self.bias)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


def conv(x, filters: int, kernel: int, stride: int, name: str):
    """Caffe-style convolution: symmetric padding of kernel // 2 (3 for 7x7, 1 for 3x3)."""
    return CaffeConv2D(filters, kernel, pad=kernel // 2, strides=stride, name=name)(x)


def bottleneck_block(x, filters, stride: int, projection: bool, name: str):
    """One residual bottleneck: 1x1 -> 3x3 -> 1x1, plus identity or projection shortcut."""
    f1, f2, f3 = filters
    if projection:
        shortcut = conv(x, f3, 1, stride, f"conv_{name}_proj_shortcut")
    else:
        shortcut = x
    y = conv(x, f1, 1, stride, f"conv_{name}_branch2a")
    y = layers.ReLU(name=f"relu_{name}_branch2a")(y)
    y = conv(y, f2, 3, 1, f"conv_{name}_branch2b")
    y = layers.ReLU(name=f"relu_{name}_branch2b")(y)
    y = conv(y, f3, 1, 1, f"conv_{name}_branch2c")
    y = layers.Add(name=f"eltwise_{name}")([y, shortcut])
    return layers.ReLU(name=f"relu_{name}")(y)


DTYPE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # model.scorer.PRECISIONS -> Keras policy


def build_resnet50_thin(precision: str = EXACT_PRECISION) -> keras.Model:
    """The open_nsfw network with untrained weights (load them with ``weights.load_into``).

    ``precision="bfloat16"`` computes the convolutions in bfloat16 (weights kept in float32),
    the classifier and softmax in float32: faster on CPUs with AVX512-BF16/AMX, not exact."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(DTYPE_POLICIES[precision])
    try:
        return _build()
    finally:
        keras.config.set_dtype_policy(previous)


def _build() -> keras.Model:
    inputs = keras.Input(shape=(None, None, 3), dtype="float32", name="data")
    x = conv(inputs, 64, 7, 2, "conv_1")
    x = layers.ReLU(name="relu_1")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, blocks, filters, stride in STAGES:
        for block in range(blocks):
            x = bottleneck_block(
                x,
                filters,
                stride=stride if block == 0 else 1,
                projection=block == 0,
                name=f"stage{stage}_block{block}",
            )
    x = layers.AveragePooling2D(7, strides=1, padding="valid", name="pool")(x)
    # the classifier on each pooled position: on a 224x224 input, Caffe's flatten + inner product
    x = layers.Dense(2, name="fc_nsfw", dtype="float32")(x)
    outputs = layers.Softmax(name="prob", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="resnet_50_1by2_nsfw")


def weight_layers(model: keras.Model) -> dict[str, layers.Layer]:
    """The layers that hold weights, by name (convolutions and the classifier)."""
    return {layer.name: layer for layer in model.layers if layer.weights}
