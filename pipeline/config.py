"""The job's configuration: one typed object, built and validated here, then passed down.

Layers, later ones winning: ``configs/default.yaml`` shipped with the package -> a file given
with ``--config`` -> command-line flags. Unknown keys, wrong types and impossible values are
errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from typing import Any

import yaml

from ..model.decision import OwnThresholds, Thresholds
from ..model.engine_specs import ENGINES, EngineSpec, OnnxRuntimeSpec, TensorFlowSpec
from ..model.errors import UsageError
from ..model.hash_list import Matching
from ..model.pictures.preprocess import DEFAULT_MAX_PIXELS, EXACT_LOADER, LOADERS
from ..model.pictures.views import VIEW_MODES, ViewPolicy
from ..model.precision import AUTO
from ..model.scorer import EXACT_PRECISION, PRECISIONS
from ..model.weights import READERS, WeightsSource
from ..storage.http_reading import HttpSettings
from ..storage.read import ReadPolicy
from ..transforms.manifest_formats import DEFAULT_URI_COLUMN
from ..transforms.read_and_decode import Loading
from ..transforms.results import FirstPassRule


class ConfigError(UsageError):
    """A configuration file or flag that cannot be used; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Batch:
    min_size: int = 16
    max_size: int = 64

    def problems(self):
        if not 1 <= self.min_size <= self.max_size:
            yield "", f"need 1 <= min_size <= max_size, got {self.min_size}, {self.max_size}"


@dataclasses.dataclass(frozen=True)
class Limits:
    max_bytes: int = 64 << 20
    max_pixels: int = DEFAULT_MAX_PIXELS  # the model layer's own limit (Pillow's)

    def problems(self):
        if self.max_bytes < 1 or self.max_pixels < 1:
            yield "", "max_bytes and max_pixels must be positive"


@dataclasses.dataclass(frozen=True)
class Frames:
    """Frames of animations (GIF, APNG, WebP) and multi-image files (TIFF, HEIC, MPO) scored
    as views of their own (with ``views: all``)."""

    max: int = ViewPolicy().max_frames  # per file, Yahoo's first frame and the last included
    max_pixels: int = ViewPolicy().max_frame_pixels  # decoded per file for frames (each at least 256x256)

    def problems(self):
        if self.max < 2 or self.max_pixels < 1:
            yield "", "need max >= 2 (the first and the last frame) and max_pixels >= 1"


@dataclasses.dataclass(frozen=True)
class Video:
    """Videos (``model.pictures.video``, with the ``video`` extra): frames sampled, one per second up to
    ``max_frames`` (evenly spread beyond), and pixels decoded per file; the frames after the
    first are decided at thresholds of their own (``model.decision.OwnThresholds``)."""

    max_frames: int = ViewPolicy().video_max_frames
    max_pixels: int = ViewPolicy().video_max_pixels
    safe_below: float = ViewPolicy().clip_thresholds.safe_below
    nsfw_from: float = ViewPolicy().clip_thresholds.nsfw_from

    def problems(self):
        if self.max_frames < 2 or self.max_pixels < 1:
            yield "", "need max_frames >= 2 (the first and the last frame) and max_pixels >= 1"
        yield from _own_problems(self)


@dataclasses.dataclass(frozen=True)
class Regions:
    """A still's regions scored as views of their own (``views: all``): stills whose shorter side
    has ``min_side`` pixels or more; regions are decided at thresholds of their own
    (``model.decision.OwnThresholds``)."""

    min_side: int = ViewPolicy().region_min_side
    safe_below: float = ViewPolicy().region_thresholds.safe_below
    nsfw_from: float = ViewPolicy().region_thresholds.nsfw_from

    def problems(self):
        if self.min_side < 1:
            yield "min_side", "must be a positive number of pixels"
        yield from _own_problems(self)


def _own_problems(section):
    try:
        OwnThresholds(section.safe_below, section.nsfw_from)
    except ValueError as exc:  # the thresholds' own check
        yield "", f"{exc} (the scores of its own that count as 0.2 and 0.8)"


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Decoding ahead of the model, in a pool of threads per worker process (reading has its own,
    ``storage.read.ReadPolicy``)."""

    threads: int | None = None  # None: one per core; 0: in the worker thread, nothing ahead
    ahead: int | None = None  # elements in the pool per worker thread; None: batch.max_size

    def problems(self):
        if (self.threads or 0) < 0 or (self.ahead is not None and self.ahead < 1):
            yield "", "threads must be null or 0 or more, ahead null or 1 or more"


@dataclasses.dataclass(frozen=True)
class Weights:
    """Where the weights come from (``model.weights.WeightsSource``, whose defaults these are)."""

    kind: str = WeightsSource.kind
    path: str | None = WeightsSource.path
    trusted: bool = WeightsSource.trusted

    def source(self) -> WeightsSource:
        return WeightsSource(self.kind, self.path, self.trusted)

    def problems(self):
        if self.kind not in READERS:
            yield "kind", f"{self.kind!r} is not one of {sorted(READERS)}"
        if self.kind != "onnx" and not self.path:
            yield "path", f"weights kind {self.kind!r} needs a path"


@dataclasses.dataclass(frozen=True)
class Manifest:
    uri_column: str = DEFAULT_URI_COLUMN


@dataclasses.dataclass(frozen=True)
class ModelSharing:
    """Beam's switches for one model shared by all SDK processes of a worker machine."""

    large_model: bool = False
    copies: int | None = None

    def problems(self):
        if self.copies is not None and self.copies < 1:
            yield "copies", "must be a positive number or null"


@dataclasses.dataclass(frozen=True)
class TensorFlow:
    """TensorFlow's thread pools per process and how a batch is split among them (0: the
    defaults of ``model.engines.TensorFlowScorer``, every core busy)."""

    intra_op_threads: int = TensorFlowSpec.intra_op_threads
    inter_op_threads: int = TensorFlowSpec.inter_op_threads
    parallel_batches: int = TensorFlowSpec.parallel_batches
    precision: str = TensorFlowSpec.precision

    def problems(self):
        if self.precision not in PRECISIONS:
            yield "precision", f"{self.precision!r} is not one of {list(PRECISIONS)}"
        if min(self.intra_op_threads, self.inter_op_threads, self.parallel_batches) < 0:
            yield "", "thread counts must be 0 (default) or positive"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Rows made durable while a run goes (``storage/rows.py``): each worker process writes the
    rows it finished every ``rows`` rows or ``seconds`` seconds, whichever comes first, and a
    killed run's rows are salvaged by the next run on the folder."""

    enabled: bool = True
    rows: int = 1000
    seconds: float = 30.0

    def problems(self):
        if self.rows < 1 or self.seconds <= 0:
            yield "", "need rows >= 1 and seconds > 0"


@dataclasses.dataclass(frozen=True)
class Cascade:
    """A cheap first pass, then Yahoo's exact steps only for rows near a threshold
    (``transforms.scoring.FirstPass``). Applies when the configured steps are the exact ones
    (``loader: yahoo``, the TensorFlow engine in float32); ``margin``: how far from a threshold
    a first-pass score must lie to be kept, from the largest deviation measured between the two
    paths with a safety factor (README, "Cascade")."""

    enabled: bool = True
    loader: str = "fast"
    precision: str = AUTO  # or one of PRECISIONS, forced
    margin: float = 0.07

    def problems(self):
        if self.loader not in LOADERS:
            yield "loader", f"{self.loader!r} is not one of {sorted(LOADERS)}"
        if self.precision not in (AUTO, *PRECISIONS):
            yield "precision", f"{self.precision!r} is not one of {[AUTO, *PRECISIONS]}"
        if not 0 <= self.margin <= 0.5:
            yield "margin", f"must be between 0 and 0.5, got {self.margin}"


@dataclasses.dataclass(frozen=True)
class Config:
    thresholds: Thresholds = Thresholds()
    loader: str = EXACT_LOADER
    views: str = ViewPolicy().views
    frames: Frames = Frames()
    video: Video = Video()
    regions: Regions = Regions()
    engine: str = TensorFlowSpec.name
    batch: Batch = Batch()
    limits: Limits = Limits()
    decoding: Decoding = Decoding()
    reading: ReadPolicy = ReadPolicy()
    http: HttpSettings = HttpSettings()
    weights: Weights = Weights()
    manifest: Manifest = Manifest()
    progress_every: int = 1000
    content_dedup: bool = False
    partitions: int = 1
    model_sharing: ModelSharing = ModelSharing()
    tensorflow: TensorFlow = TensorFlow()
    cascade: Cascade = Cascade()
    checkpoint: Checkpoint = Checkpoint()
    matching: Matching = Matching()
    # Beam pipeline options (runner presets); flags on the command line win over these.
    pipeline_options: dict = dataclasses.field(default_factory=dict)

    def engine_spec(self, engine: str | None = None, precision: str | None = None) -> EngineSpec:
        """The configured engine (or ``engine``, in ``precision``) with its settings, typed."""
        if (engine or self.engine) == OnnxRuntimeSpec.name:
            return OnnxRuntimeSpec(self.weights.source(), self.tensorflow.intra_op_threads)
        tf = self.tensorflow
        return TensorFlowSpec(self.weights.source(), tf.intra_op_threads, tf.inter_op_threads,
                              tf.parallel_batches, precision or tf.precision)

    @property
    def cascades(self) -> bool:
        """Whether rows are scored by the cascade: enabled, over the exact steps."""
        return (self.cascade.enabled and self.loader == EXACT_LOADER and self.engine == TensorFlowSpec.name
                and self.tensorflow.precision == EXACT_PRECISION)

    def first_pass(self) -> tuple[Loading, TensorFlowSpec]:
        """The cascade's first pass: its loading and its engine."""
        return self.loading(self.cascade.loader), self.engine_spec(TensorFlowSpec.name, self.cascade.precision)

    def first_pass_rule(self) -> FirstPassRule:
        """When a first-pass score stands, at these thresholds and margin, for these views."""
        return FirstPassRule(self.thresholds, self.cascade.margin, self.view_policy())

    def loading(self, loader: str | None = None) -> Loading:
        """How images are read and preprocessed (``transforms.read_and_decode.Loading``), for the job's
        steps and for ``nsfw-scan score`` alike; ``loader`` instead of the configured one."""
        if self.view_policy().regions and self.engine != TensorFlowSpec.name:
            raise ConfigError(f"engine: the {self.engine} engine scores 224x224 views only, not the region maps of "
                              "views: all; add --views whole (views: whole), or use the tensorflow engine")
        return Loading(loader or self.loader, self.limits.max_bytes, self.limits.max_pixels, self.reading, self.http,
                       self.decoding.threads, self.view_policy(), self.matching)

    def view_policy(self) -> ViewPolicy:
        """Which views of each file are scored (``model.pictures.views.ViewPolicy``)."""
        return ViewPolicy(self.views, self.frames.max, self.frames.max_pixels, self.video.max_frames,
                          self.video.max_pixels, OwnThresholds(self.regions.safe_below, self.regions.nsfw_from),
                          OwnThresholds(self.video.safe_below, self.video.nsfw_from), self.regions.min_side)

    def beam_args(self) -> list[str]:
        """``pipeline_options`` as Beam command-line flags."""
        args = []
        for key, value in self.pipeline_options.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if v is True:
                    args.append(f"--{key}")
                elif v is not False and v is not None:
                    args.append(f"--{key}={v}")
        return args

    def validate(self, origin: str) -> "Config":
        """Each section checks its own values (``problems``); the settings that span sections
        and the top-level ones are checked here."""
        def fail(key, why):
            raise ConfigError(f"{origin}: {key}: {why}")

        for field in dataclasses.fields(self):
            section = getattr(self, field.name)
            for key, why in getattr(section, "problems", lambda: ())():
                fail(f"{field.name}.{key}" if key else field.name, why)
        if self.loader not in LOADERS:
            fail("loader", f"{self.loader!r} is not one of {sorted(LOADERS)}")
        if self.views not in VIEW_MODES:
            fail("views", f"{self.views!r} is not one of {list(VIEW_MODES)}")
        if self.engine not in ENGINES:
            fail("engine", f"{self.engine!r} is not one of {list(ENGINES)}")
        if self.tensorflow.precision != EXACT_PRECISION and self.engine != TensorFlowSpec.name:
            fail("tensorflow.precision", "bfloat16 is a TensorFlow engine option")
        if self.partitions < 1:
            fail("partitions", "must be 1 or more")
        if self.progress_every < 1:
            fail("progress_every", "must be a positive number of images")
        return self


def _typecheck(value, annotation: str, key: str, origin: str):
    expected = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict,
                "tuple[str, ...]": (list, tuple), "str | None": (str, type(None)), "int | None": (int, type(None))}
    wanted = expected.get(annotation)
    if wanted is None:
        return value
    if isinstance(value, bool) and annotation in ("int", "float", "int | None"):
        raise ConfigError(f"{origin}: {key}: expected a number, got {value!r}")
    if not isinstance(value, wanted):
        raise ConfigError(f"{origin}: {key}: expected {annotation}, got {value!r}")
    return float(value) if annotation == "float" else tuple(value) if annotation.startswith("tuple") else value


def _merge(obj, overrides: dict[str, Any], origin: str, prefix: str = ""):
    if not isinstance(overrides, dict):
        raise ConfigError(f"{origin}: {prefix.rstrip('.') or 'top level'}: expected a mapping, got {overrides!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{origin}: unknown key {name!r}; known keys here: {sorted(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, origin, f"{name}.")
        elif isinstance(current, dict):
            changes[key] = {**current, **_typecheck(value, "dict", name, origin)}
        else:
            changes[key] = _typecheck(value, fields[key].type, name, origin)
    try:
        return dataclasses.replace(obj, **changes)
    except ValueError as exc:  # e.g. Thresholds' own check
        raise ConfigError(f"{origin}: {prefix.rstrip('.')}: {exc}") from None


def _read_yaml(text: str, origin: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    return data or {}


def default_config_text() -> str:
    return (importlib.resources.files("nsfw_scan.configs") / "default.yaml").read_text()


def packaged_configs() -> list[str]:
    return sorted(p.name[:-5] for p in importlib.resources.files("nsfw_scan.configs").iterdir()
                  if p.name.endswith(".yaml") and p.name != "default.yaml")


def _config_text(path: str) -> tuple[str, str]:
    """A config file's text and how to name it: a file path, or the name of a packaged preset."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), path
    except FileNotFoundError:
        if path in packaged_configs():
            preset = importlib.resources.files("nsfw_scan.configs") / f"{path}.yaml"
            return preset.read_text(), f"configs/{path}.yaml"
        raise ConfigError(
            f"{path}: no such config file (packaged presets: {', '.join(packaged_configs())})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the file (or packaged preset) ``path``, then ``overrides`` (e.g. from flags)."""
    config = _merge(Config(), _read_yaml(default_config_text(), "configs/default.yaml"), "configs/default.yaml")
    if path:
        text, path = _config_text(path)
        config = _merge(config, _read_yaml(text, path), path).validate(path)
    if overrides:
        config = _merge(config, overrides, "command line")
    return config.validate("command line" if overrides else (path or "configs/default.yaml"))
