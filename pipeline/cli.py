"""The ``nsfw-scan`` command: ``score``, ``export-savedmodel`` (and the batch job's commands)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import ConfigError, load_config

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file overriding configs/default.yaml")
    parser.add_argument("--loader", choices=("yahoo", "tensorflow"), help="preprocessing (default: yahoo, exact)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="images per model call (max batch size)")
    parser.add_argument("--weights", metavar="FILE", help="weights file instead of the packaged open_nsfw ONNX")
    parser.add_argument("--weights-kind", choices=("onnx", "caffemodel", "npy"), help="format of --weights")
    parser.add_argument(
        "--trust-weights-pickle", action="store_true",
        help="allow reading --weights-kind npy, a Python pickle (runs code from the file)",
    )


def config_from_args(args) -> "Config":
    overrides: dict = {}
    if args.loader:
        overrides["loader"] = args.loader
    if args.batch_size is not None:
        overrides["batch"] = {"max_size": args.batch_size, "min_size": min(args.batch_size, 16)}
    weights = {}
    if args.weights:
        weights["path"] = args.weights
        weights["kind"] = args.weights_kind or ("caffemodel" if args.weights.endswith(".caffemodel") else
                                                "npy" if args.weights.endswith(".npy") else "onnx")
    elif args.weights_kind:
        weights["kind"] = args.weights_kind
    if args.trust_weights_pickle:
        weights["trusted"] = True
    if weights:
        overrides["weights"] = weights
    return load_config(args.config, overrides)


def cmd_score(args) -> int:
    from ..model.scorer import Scorer
    from .score_files import score_paths

    config = config_from_args(args)
    scorer = Scorer(config.weights.source())
    any_error = False
    for result in score_paths(args.paths, config, scorer):
        any_error |= result.error is not None
        print(json.dumps(result.as_dict()), flush=True)
    return EXIT_ERRORS if any_error else EXIT_OK


def cmd_export(args) -> int:
    from ..model.export import export_savedmodel
    from ..model.scorer import Scorer

    config = config_from_args(args)
    if os.path.exists(args.directory) and os.listdir(args.directory):
        raise ConfigError(f"{args.directory}: the export directory exists and is not empty; choose a new one")
    scorer = Scorer(config.weights.source())
    export_savedmodel(scorer.model, args.directory, args.input_type)
    print(f"SavedModel ({args.input_type} input, weights {scorer.model_id}) written to {args.directory}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nsfw-scan", description="Yahoo open_nsfw scoring at batch scale.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = commands.add_parser("score", help="score files or URIs here, one JSON line each")
    score.add_argument("paths", nargs="+", metavar="PATH", help="local paths or URIs (gs://, s3://, ...)")
    add_config_flags(score)
    score.set_defaults(func=cmd_score)

    export = commands.add_parser("export-savedmodel", help="write a SavedModel for TF Serving")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--input-type", choices=("tensor", "image_bytes"), default="tensor")
    add_config_flags(export)
    export.set_defaults(func=cmd_export)
    return parser


def main(argv=None) -> int:
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from ..model.weights import WeightsError

    try:
        return args.func(args)
    except (ConfigError, WeightsError) as exc:
        print(f"nsfw-scan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
