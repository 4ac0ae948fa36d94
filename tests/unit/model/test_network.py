import keras
import numpy as np

from nsfw_scan.model.network import STAGES, build_resnet50_thin, weight_layers


def test_structure_matches_deploy_prototxt():
    model = build_resnet50_thin()
    layers = weight_layers(model)
    convs = [name for name in layers if name.startswith("conv_")]
    # stem + 3 per bottleneck + one projection per stage
    blocks = sum(blocks for _, blocks, _, _ in STAGES)
    assert len(convs) == 1 + 3 * blocks + len(STAGES) == 53
    assert set(layers) - set(convs) == {"fc_nsfw"}
    assert model.count_params() == 5_891_266
    # convolutional up to the classifier, which applies to each pooled position (window)
    assert model.input_shape == (None, None, None, 3)
    assert model.output_shape == (None, None, None, 2)
    assert model.get_layer("conv_1").kernel.shape == (7, 7, 3, 64)
    assert model.get_layer("conv_stage3_block0_proj_shortcut").kernel.shape == (1, 1, 512, 1024)
    assert model.get_layer("conv_stage1_block0_branch2a").strides == (2, 2)
    assert model.get_layer("fc_nsfw").kernel.shape == (1024, 2)


def test_feature_map_sizes_follow_caffe_rounding():
    model = build_resnet50_thin()
    inner = keras.Model(model.input, [model.get_layer(name).output for name in
                                      ("pool1", "relu_stage1_block0", "relu_stage3_block2", "prob")])
    pool1, stage1, stage3, prob = inner(np.zeros((1, 224, 224, 3), np.float32))
    assert pool1.shape[1:3] == (56, 56) and stage1.shape[1:3] == (28, 28) and stage3.shape[1:] == (7, 7, 1024)
    assert prob.shape == (1, 1, 1, 2)  # one window: Yahoo's view
    assert inner(np.zeros((1, 448, 704, 3), np.float32))[3].shape == (1, 8, 16, 2)


def test_matches_onnxruntime_on_the_same_weights(scorer):
    import onnxruntime

    from nsfw_scan.model.weights import packaged_onnx_path

    batch = np.random.default_rng(7).uniform(-123, 151, (3, 224, 224, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(packaged_onnx_path()), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0][:, 1]
    np.testing.assert_allclose(scorer.score(batch), expected, atol=1e-5)


def test_the_window_over_flagged_content_scores_it(scorer):
    """A region map's windows, every 32 pixels: flagged content placed in a flat frame at one
    window's place is scored there, as the model scores it alone (the window also sees the frame
    around it, within the convolutions' reach, so not to the digit)."""
    from nsfw_scan.model.preprocess import yahoo_array
    from tests.support.clips import FLAGGED

    view = yahoo_array(FLAGGED.read_bytes()).views[0].pixels
    framed = np.pad(view, ((96, 128), (160, 320), (0, 0)), constant_values=128)  # 448 x 704: at (3, 5)
    windows = scorer.score_windows(framed[None])[0]
    assert windows.shape == (8, 16)
    alone = scorer.score_pixels(view[None])[0]
    assert alone >= 0.8 and np.unravel_index(int(np.argmax(windows)), windows.shape) == (3, 5)
    assert windows[3, 5] >= 0.8 and np.median(windows) < 0.2
