"""Command-line flags shared by the commands, and how they override the configuration."""

from __future__ import annotations

import argparse
import operator

from ..model.engine_specs import ENGINES
from ..model.pictures.preprocess import LOADERS
from ..model.pictures.views import VIEW_MODES
from ..model.scorer import PRECISIONS
from ..model.weights import READERS
from ..storage.paths import absolute
from .config import Batch, Config, load_config


def at_least(minimum: int):
    """An argparse type: a whole number of at least ``minimum`` (errors name the flag, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    parse.__name__ = f"number >= {minimum}"
    return parse


# nsfw-scan review --decisions: the review band, the audit samples of the rows decided nsfw and
# safe, the errors (pipeline/review.py)
REVIEW_GROUPS = ("review", "nsfw", "safe", "error")
REVIEW_ORDERS = ("score", "uri", "manifest")  # --order within each group


def review_groups(text: str) -> list[str]:
    """An argparse type: ``review,nsfw`` -> those of :data:`REVIEW_GROUPS`, in the order given."""
    groups = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [group for group in groups if group not in REVIEW_GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"{','.join(unknown) or repr(text)}: choose from {','.join(REVIEW_GROUPS)}")
    return list(dict.fromkeys(groups))


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def share(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse type: a number between ``low`` and ``high`` (each end excluded where ``*_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{low:g}, {high:g}{right}, got {text}")
        return value

    parse.__name__ = "share"
    return parse


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` before or after the command name."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log more: libraries' own messages (TensorFlow, Beam, decoders) and tracebacks")


def add_config_file_flag(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` and ``--config``: what a command that scores nothing takes (``report``)."""
    add_verbose_flag(parser)
    parser.add_argument("--config", metavar="FILE", help="YAML file overriding configs/default.yaml, or a packaged preset: dataflow, flink, spark")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The configuration file and every flag that overrides a setting of the scoring."""
    add_config_file_flag(parser)
    parser.add_argument("--loader", choices=list(LOADERS),
                        help=f"preprocessing of the exact steps (default: {Config.loader}, Yahoo's own); the cascade's "
                             f"first pass uses cascade.loader ({Config.cascade.loader})")
    parser.add_argument("--views", choices=list(VIEW_MODES),
                        help="all: every frame, the EXIF orientation, 16-bit depth and a still's regions, scored at "
                             "the highest (default); whole: the same without regions; yahoo: Yahoo's first-frame view "
                             "only")
    parser.add_argument("--engine", choices=list(ENGINES), help=f"model runtime (default: {Config.engine})")
    parser.add_argument("--precision", choices=list(PRECISIONS),
                        help=f"TensorFlow precision of the exact steps (default {Config.tensorflow.precision}, exact; "
                             f"bfloat16 is faster on some CPUs); the cascade's first pass uses cascade.precision "
                             f"({Config.cascade.precision}: the faster on each worker's CPU, measured)")
    parser.add_argument("--exact", action="store_true",
                        help="score every file with Yahoo's exact steps only (no cheap first pass: cascade.enabled false)")
    parser.add_argument("--batch-size", type=at_least(1), metavar="N", help="images per model call (max batch size)")
    parser.add_argument("--weights", metavar="FILE", help="weights file instead of the packaged open_nsfw ONNX")
    parser.add_argument("--weights-kind", choices=list(READERS), help="format of --weights")
    parser.add_argument("--match-list", metavar="FILE",
                        help="CSV of known content (columns pdq,label): each file's PDQ hashes are matched against it")
    parser.add_argument(
        "--trust-weights-pickle", action="store_true",
        help="allow reading --weights-kind npy, a Python pickle (runs code from the file)",
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", action="append", required=True, metavar="PATTERN",
                        help="manifest file or glob (local, gs://, s3://); repeat for several")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the Parquet results")
    parser.add_argument("--uri-column", metavar="NAME", help="URI column of CSV/JSON/Parquet manifests")
    parser.add_argument("--partitions", type=at_least(1), metavar="K",
                        help="run the URIs in K parts, one after the other (bounded memory, finished parts kept)")
    parser.add_argument("--decode-threads", type=at_least(0), metavar="N",
                        help="threads per worker process reading and decoding ahead of the model (default: one per core; 0: none)")
    parser.add_argument("--content-dedup", action="store_true",
                        help="score identical files (same sha256) once, and reuse earlier runs' scores for them")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--rescore-errors", action="store_true",
                       help="also redo URIs whose earlier row in --output is an error")
    again.add_argument("--force", action="store_true",
                       help="score every URI again; the new run replaces all earlier runs in --output")
    parser.add_argument("--break-lock", action="store_true",
                        help="take the lock of --output even if another run seems to hold it (when that run is gone)")
    add_config_flags(parser)


def run_parser() -> argparse.ArgumentParser:
    """``nsfw-scan run``'s own flags; the rest of its command line is Beam's pipeline options."""
    parser = argparse.ArgumentParser(prog="nsfw-scan run", allow_abbrev=False)
    add_run_flags(parser)
    return parser


def _kind_of(path: str) -> str:
    """The weights kind a file's suffix tells (``--weights-kind`` overrides it)."""
    return "caffemodel" if path.endswith(".caffemodel") else "npy" if path.endswith(".npy") else "onnx"


def _min_batch(size: int) -> int:
    """The smallest batch with ``--batch-size N``: N, or the default smallest batch if that is less."""
    return min(size, Batch().min_size)


# Every flag that overrides a setting: (the flag's argparse dest, the dotted configuration key it
# sets, a function of the flag's value giving the key's value, or None for the value itself). A
# flag absent from a command (or not given) sets nothing; for one key, later entries win over
# earlier ones (--weights-kind over the kind --weights' suffix tells).
FLAG_SETTINGS = (
    ("loader", "loader", None),
    ("views", "views", None),
    ("engine", "engine", None),
    ("precision", "tensorflow.precision", None),
    ("exact", "cascade.enabled", operator.not_),
    ("batch_size", "batch.max_size", None),
    ("batch_size", "batch.min_size", _min_batch),
    ("weights", "weights.path", absolute),
    ("weights", "weights.kind", _kind_of),
    ("weights_kind", "weights.kind", None),
    ("trust_weights_pickle", "weights.trusted", None),
    # nsfw-scan run's own flags
    ("uri_column", "manifest.uri_column", None),
    ("partitions", "partitions", None),
    ("decode_threads", "decoding.threads", None),
    ("content_dedup", "content_dedup", None),
    ("match_list", "matching.list", absolute),
)


def _given(value) -> bool:
    """Whether a flag was given: absent ones are None, or False for switches (an empty text
    counts as absent too)."""
    return value is not None and value is not False and value != ""


def flag_overrides(args) -> dict:
    """The nested overrides (``load_config``'s) that the flags given in ``args`` make, by ``FLAG_SETTINGS``."""
    overrides: dict = {}
    for dest, key, value_of in FLAG_SETTINGS:
        value = getattr(args, dest, None)
        if not _given(value):
            continue
        *sections, name = key.split(".")
        section = overrides
        for part in sections:
            section = section.setdefault(part, {})
        section[name] = value if value_of is None else value_of(value)
    return overrides


def config_from_args(args) -> Config:
    """The configuration of a command line: its ``--config`` file (or the defaults), then its flags."""
    return load_config(args.config, flag_overrides(args))
