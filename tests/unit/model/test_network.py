import keras
import numpy as np
import pytest

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


def test_a_region_map_scores_every_window_and_one_window_is_a_view(scorer):
    """On a 224x224 input, the one window is the view (Yahoo's network); a larger map has a
    window every 32 pixels."""
    from nsfw_scan.model.pictures.preprocess import yahoo_array
    from support.corpus import REAL

    view = yahoo_array((REAL / "astronaut.png").read_bytes()).views[0].pixels
    assert scorer.score_windows(view[None]).shape == (1, 1, 1)
    assert scorer.score_windows(view[None])[0, 0, 0] == pytest.approx(scorer.score_pixels(view[None])[0], abs=1e-6)
    assert scorer.score_windows(np.zeros((2, 448, 704, 3), np.uint8)).shape == (2, 8, 16)


def test_the_window_that_holds_an_inset_flags_it(scorer):
    """Content the model flags, shown at about a third of a photo's side: Yahoo's view scores the
    photo safe; the region map's highest window lies over the inset and flags it."""
    from nsfw_scan.model.pictures.preprocess import load_image
    from nsfw_scan.model.pictures.views import ViewPolicy
    from support.clips import FLAGGED_IN_SCENE, flagged
    from support.images import encoded, rgb

    scene = rgb("coffee.png", (1200, 900))
    inset = (440, 290, 760, 610)
    scene.paste(flagged(FLAGGED_IN_SCENE).resize((320, 320)), inset[:2])
    image = load_image(encoded(scene, "JPEG"), policy=ViewPolicy())
    (yahoo, _), (best, window) = scorer.score_views([view.pixels for view in image.views])
    assert yahoo < 0.2 and best >= 0.8
    left, top, right, bottom = map(int, image.views[1].windows.name(window).split()[1].split(","))
    assert left < inset[2] and inset[0] < right and top < inset[3] and inset[1] < bottom
