"""Command-line flags shared by the commands, and how they override the configuration."""

from __future__ import annotations

import argparse
import os

from ..model.engines import ENGINES
from ..model.runtime import PRECISIONS
from ..model.preprocess import LOADERS, VIEW_MODES
from ..model.weights import READERS
from .config import Config, load_config


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


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` before or after the command name."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log more: libraries' own messages (TensorFlow, Beam, decoders) and tracebacks")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    add_verbose_flag(parser)
    parser.add_argument("--config", metavar="FILE", help="YAML file overriding configs/default.yaml, or a packaged preset: dataflow, flink, spark")
    parser.add_argument("--loader", choices=list(LOADERS), help="preprocessing (default: yahoo, exact)")
    parser.add_argument("--views", choices=list(VIEW_MODES),
                        help="all: every frame, the EXIF orientation, 16-bit depth, scored at the highest (default); "
                             "yahoo: Yahoo's first-frame view only")
    parser.add_argument("--engine", choices=list(ENGINES), help="model runtime (default: tensorflow)")
    parser.add_argument("--precision", choices=list(PRECISIONS),
                        help="TensorFlow engine precision (default float32, exact; bfloat16 is faster)")
    parser.add_argument("--exact", action="store_true",
                        help="score every file with Yahoo's exact steps only (no cheap first pass: cascade.enabled false)")
    parser.add_argument("--batch-size", type=at_least(1), metavar="N", help="images per model call (max batch size)")
    parser.add_argument("--weights", metavar="FILE", help="weights file instead of the packaged open_nsfw ONNX")
    parser.add_argument("--weights-kind", choices=list(READERS), help="format of --weights")
    parser.add_argument(
        "--trust-weights-pickle", action="store_true",
        help="allow reading --weights-kind npy, a Python pickle (runs code from the file)",
    )


def config_from_args(args) -> Config:
    overrides: dict = {}
    if args.loader:
        overrides["loader"] = args.loader
    if args.views:
        overrides["views"] = args.views
    if args.engine:
        overrides["engine"] = args.engine
    if args.precision:
        overrides["tensorflow"] = {"precision": args.precision}
    if args.exact:
        overrides["cascade"] = {"enabled": False}
    if args.batch_size is not None:
        overrides["batch"] = {"max_size": args.batch_size, "min_size": min(args.batch_size, 16)}
    weights = {}
    if args.weights:
        # absolute: workers in other processes run in other folders
        weights["path"] = args.weights if "://" in args.weights else os.path.abspath(args.weights)
        weights["kind"] = args.weights_kind or ("caffemodel" if args.weights.endswith(".caffemodel") else
                                                "npy" if args.weights.endswith(".npy") else "onnx")
    elif args.weights_kind:
        weights["kind"] = args.weights_kind
    if args.trust_weights_pickle:
        weights["trusted"] = True
    if weights:
        overrides["weights"] = weights
    if getattr(args, "partitions", None) is not None:
        overrides["partitions"] = args.partitions
    if getattr(args, "decode_threads", None) is not None:
        overrides["decoding"] = {"threads": args.decode_threads}
    if getattr(args, "content_dedup", False):
        overrides["content_dedup"] = True
    if getattr(args, "uri_column", None):
        overrides["manifest"] = {"uri_column": args.uri_column}
    return load_config(args.config, overrides)
