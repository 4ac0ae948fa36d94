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
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 2)
    assert model.get_layer("conv_1").kernel.shape == (7, 7, 3, 64)
    assert model.get_layer("conv_stage3_block0_proj_shortcut").kernel.shape == (1, 1, 512, 1024)
    assert model.get_layer("conv_stage1_block0_branch2a").strides == (2, 2)
    assert model.get_layer("fc_nsfw").kernel.shape == (1024, 2)


def test_feature_map_sizes_follow_caffe_rounding():
    model = build_resnet50_thin()
    assert model.get_layer("pool1").output.shape[1:3] == (56, 56)
    assert model.get_layer("relu_stage1_block0").output.shape[1:3] == (28, 28)
    assert model.get_layer("relu_stage3_block2").output.shape[1:] == (7, 7, 1024)


def test_matches_onnxruntime_on_the_same_weights(scorer):
    import onnxruntime

    from nsfw_scan.model.weights import packaged_onnx_path

    batch = np.random.default_rng(7).uniform(-123, 151, (3, 224, 224, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(packaged_onnx_path()), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0][:, 1]
    np.testing.assert_allclose(scorer.score(batch), expected, atol=1e-5)
