"""The ``nsfw-scan`` command: ``run``, ``demo``, ``score``, ``report``, ``review``, ``calibrate``,
``redecide``, ``hashes``, ``match``, ``export``, ``bench``, ``export-savedmodel``."""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import logging
import os
import sys
import traceback
import warnings
from typing import TYPE_CHECKING

# google-auth and google-api-core warn on import about the grpcio and Python releases they will
# drop one day: nothing about this job, and every command would start with them.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\.|$)")

from . import interrupts  # noqa: E402  (after the filter: importing them may import google packages)
from .logs import configure_logging  # noqa: E402

if TYPE_CHECKING:  # for annotations only
    from ..storage.options import StorageOptions
    from .config import Config

# Beam, TensorFlow and the configuration are imported once the signals are caught (in main),
# so that Ctrl-C in the first seconds is one line too
EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
BENCH_BATCH_SIZE = 32  # images per model call of nsfw-scan bench without --batch-size


def version() -> str:
    """``nsfw-scan X (Apache Beam Y, TensorFlow Z, Python W)``, read from the installed packages'
    metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def of(name: str) -> str:
        try:
            return installed(name)
        except PackageNotFoundError:
            return "not installed"

    python = ".".join(map(str, sys.version_info[:3]))
    return (f"nsfw-scan {of('nsfw-scan')} (Apache Beam {of('apache-beam')}, TensorFlow {of('tensorflow-cpu')}, "
            f"Python {python})")


def cmd_score(args) -> int:
    from ..storage.read import scheme_of
    from .flags import config_from_args
    from .score import score_paths

    config = config_from_args(args)
    if args.storage_flags or any(scheme_of(uri) for uri in (*args.paths, config.matching.list or "")):
        from ..storage.options import StorageOptions  # Beam's: not for local files only

        StorageOptions.from_flags(args).apply()  # before any file is read
    scorer = config.engine_spec().load(warm_up=False)  # a handful of files: trace only the graphs they use
    any_error = False
    for result in score_paths(args.paths, config, scorer):
        any_error |= result.error is not None
        print(json.dumps(result.as_dict()), flush=True)
    return EXIT_ERRORS if any_error else EXIT_OK


def cmd_export_savedmodel(args) -> int:
    from ..model.engine_specs import TensorFlowSpec
    from ..model.export import export_savedmodel
    from .config import ConfigError
    from .flags import config_from_args

    config = config_from_args(args)
    if os.path.exists(args.directory) and os.listdir(args.directory):
        raise ConfigError(f"{args.directory}: the export directory exists and is not empty; choose a new one")
    scorer = config.engine_spec(TensorFlowSpec.name).load()
    export_savedmodel(scorer.model, args.directory, args.input_type)
    print(f"SavedModel ({args.input_type} input, weights {scorer.model_id}) written to {args.directory}")
    return EXIT_OK


def cmd_run(args, beam_args) -> int:
    from .run import plan_run, print_run, run_plan
    from .summary import RunSummary, nothing_scored

    summary = run_plan(plan_run(args, beam_args))
    print_run(summary)
    if not isinstance(summary, RunSummary):  # a template written: nothing ran
        return EXIT_OK
    if problem := summary.accounting_problem:
        print(f"nsfw-scan: warning: {problem}", file=sys.stderr)
        return EXIT_ERRORS
    if warning := nothing_scored(summary):
        print(f"nsfw-scan: warning: {warning}", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


def cmd_demo(args, argv) -> int:
    from .demo import make_demo_corpus
    from .run import print_run, run

    manifest = make_demo_corpus(args.directory)
    print(f"demo corpus: {manifest}")
    # --force: the demo corpus is made anew each time, so each demo run scores all of it
    summary = run(["--manifest", manifest, "--output", os.path.join(args.directory, "results"), "--force", *argv])
    print_run(summary)
    return EXIT_OK


@dataclasses.dataclass(frozen=True)
class ResultsCommand:
    """What a command over the results in DIR starts from (its results are read through
    ``storage.results_folder.ResultsFolder``)."""

    directory: str  # DIR, absolute where local
    config: Config | None  # from --config and the flags; None for a command without --config
    storage: StorageOptions  # Beam's storage options, applied


def results_setup(args, config: bool = True) -> ResultsCommand:
    """The setup every command over the results in DIR shares: its configuration (``config``:
    the command takes ``--config``), the storage options applied before any file is read, and
    DIR made absolute."""
    from ..storage.options import StorageOptions
    from ..storage.paths import absolute
    from .flags import config_from_args

    settings = config_from_args(args) if config else None
    storage = StorageOptions.from_flags(args).apply()  # before any file is read
    return ResultsCommand(absolute(args.directory), settings, storage)


def cmd_report(args) -> int:
    from ..storage.paths import absolute
    from .report import format_report, write_report

    command = results_setup(args)
    report_dir = absolute(args.report_dir) if args.report_dir else None
    print(format_report(*write_report(command.directory, command.config.thresholds, report_dir)))
    return EXIT_OK


def cmd_export(args) -> int:
    from ..storage.paths import absolute, shown
    from .report import export_csv

    command = results_setup(args, config=False)
    rows = export_csv(command.directory, absolute(args.csv))
    print(f"{rows} rows written to {shown(absolute(args.csv))}")
    return EXIT_OK


def cmd_redecide(args) -> int:
    from .redecide import format_redecided, redecide

    command = results_setup(args)
    print(format_redecided(command.directory, redecide(command.directory, command.config, command.storage)))
    return EXIT_OK


def cmd_hashes(args) -> int:
    from ..storage.paths import absolute
    from .hashes import write_hashes

    command = results_setup(args)
    out = absolute(args.out) if args.out else None
    text = write_hashes(command.directory, out, args.decision, args.label, command.config.matching.min_quality,
                        absolute(args.labels) if args.labels else None)
    (sys.stdout.write(text) if out is None else print(text))
    return EXIT_OK


def cmd_match(args) -> int:
    from .match import format_matched, match_results

    command = results_setup(args)
    matching = command.config.matching
    print(format_matched(command.directory, matching.list, match_results(command.directory, matching, command.storage)))
    return EXIT_OK


def cmd_calibrate(args) -> int:
    from ..storage.paths import absolute
    from .calibrate import format_table, run_calibration

    command = results_setup(args, config=False)
    summary, written = run_calibration(command.directory, absolute(args.labels), args.target_precision,
                                       args.missed, args.base_rate)
    print(json.dumps({**summary, "written": written}) if args.json else format_table(summary, written))
    return EXIT_OK if "thresholds" in written else EXIT_ERRORS


def cmd_review(args) -> int:
    from .review import Choice, format_review, write_review

    command = results_setup(args)
    choice = Choice(tuple(args.decisions), args.limit, args.audit, args.audit_min, args.seed, args.order, args.blur)
    print(format_review(write_review(command.directory, command.config, choice)))
    return EXIT_OK


def cmd_bench(args) -> int:
    from ..model.bench import images_per_second
    from ..model.engine_specs import TensorFlowSpec
    from ..model.precision import cpu_description, fastest_precision
    from ..model.scorer import PRECISIONS
    from .flags import config_from_args

    config = config_from_args(args)
    batch = args.batch_size or BENCH_BATCH_SIZE
    # the TensorFlow engine in every precision (or the one asked for), the configured one first
    chosen = config.tensorflow.precision
    precisions = [chosen] + ([p for p in PRECISIONS if p != chosen] if args.precision is None else [])
    specs = ([config.engine_spec(precision=p) for p in precisions] if config.engine == TensorFlowSpec.name
             else [config.engine_spec()])
    rates = {}
    for spec in specs:
        scorer = spec.load()
        rates[getattr(spec, "precision", None)] = images_per_second(scorer.score, batch, args.seconds)
    result = {"engine": config.engine, "batch_size": batch, "threads": scorer.threads,
              "images_per_s": round(rates[getattr(specs[0], "precision", None)], 2)}
    if config.engine == TensorFlowSpec.name:
        choice = fastest_precision()
        result.update(precisions={p: round(rate, 2) for p, rate in rates.items()}, first_pass=choice.precision,
                      cpu=cpu_description())
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    for precision, rate in rates.items():
        print(f"{config.engine}{f' {precision}' if precision else ''}: {rate:.1f} images/s "
              f"(batch {batch}, {result['threads']} threads)")
    if config.engine == TensorFlowSpec.name:
        print(f"first pass on this CPU (cascade.precision auto): {choice.describe()}\nCPU: {result['cpu']}")
    return EXIT_OK


def build_parser(storage_flags: bool = True) -> argparse.ArgumentParser:
    """The command line's parser. ``storage_flags``: with Beam's storage flags on the commands
    that take them; without, Beam is not imported (see :func:`_parsed`)."""
    from .flags import (
        REVIEW_GROUPS,
        REVIEW_ORDERS,
        add_config_file_flag,
        add_config_flags,
        add_run_flags,
        add_verbose_flag,
        at_least,
        positive_float,
        review_groups,
        share,
    )

    if storage_flags:
        from ..storage.options import add_storage_flags
    else:
        def add_storage_flags(parser):
            pass

    # allow_abbrev=False everywhere: a shortened flag (--forc) is an error, never taken for another
    parser = argparse.ArgumentParser(prog="nsfw-scan", description="Yahoo open_nsfw scoring at batch scale.",
                                     allow_abbrev=False)
    add_verbose_flag(parser)
    parser.add_argument("--version", action="version", version=version())
    parser.set_defaults(verbose=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = commands.add_parser(
        "score", help="score files or URIs here, one JSON line each, by Yahoo's exact steps (run's rows far from a "
                      "threshold carry the cheaper first pass's score, exact false; run --exact gives these)",
        allow_abbrev=False)
    score.add_argument("paths", nargs="+", metavar="PATH", help="local paths or URIs (gs://, s3://, ...)")
    add_config_flags(score)
    add_storage_flags(score)
    score.set_defaults(func=cmd_score, storage_flags=storage_flags)

    job = commands.add_parser(
        "run", help="the batch job: manifests -> scores -> Parquet (Beam flags pass through); every decision is "
                    "Yahoo's exact steps', scores far from a threshold the first pass's (exact false) unless --exact",
        allow_abbrev=False)
    add_run_flags(job)
    job.set_defaults(func=cmd_run, beam_flags=True)

    demo = commands.add_parser("demo", help="generate a small corpus offline and run the job on it",
                               allow_abbrev=False)
    demo.add_argument("directory", nargs="?", default="nsfw-scan-demo", metavar="DIR")
    add_verbose_flag(demo)
    demo.set_defaults(func=cmd_demo, beam_flags=True)

    def results_command(name: str, help: str, func, config: bool = False) -> argparse.ArgumentParser:
        """A command over the results in DIR, local or in a bucket (storage flags); ``config``:
        it takes ``--config`` too (for thresholds)."""
        command = commands.add_parser(name, help=help, allow_abbrev=False)
        command.add_argument("directory", metavar="DIR", help="the --output of nsfw-scan run (local, gs://, s3://, ...)")
        if config:
            add_config_file_flag(command)
        else:
            add_verbose_flag(command)
        add_storage_flags(command)
        command.set_defaults(func=func)
        return command

    report = results_command("report", "counts, score chart and review queue of all runs in DIR", cmd_report, config=True)
    report.add_argument("--report-dir", metavar="DIR", help="where to write the chart and review queue (default: DIR/_report)")

    results_command("redecide", "decide every row in DIR again at the thresholds of --config (first-pass rows near "
                                "them scored again exactly)", cmd_redecide, config=True)

    calibration = results_command("calibrate", "thresholds from a labelled sample of the rows in DIR (thresholds.yaml "
                                               "for --config, and a chart)", cmd_calibrate)
    calibration.add_argument("--labels", required=True, metavar="FILE",
                             help="CSV, TSV, JSON Lines or Parquet with a uri and a label column (nsfw/safe, 1/0, true/false)")
    calibration.add_argument("--precision", dest="target_precision", type=share(0, 1, low_open=True), default=0.95,
                             metavar="P", help="the nsfw threshold: the lowest with at least this share of flagged rows "
                                               "labelled nsfw (default 0.95)")
    calibration.add_argument("--missed", type=share(0, 1, high_open=True), default=0.01, metavar="M",
                             help="the safe threshold: the highest with at most this share of nsfw-labelled rows "
                                  "below it (default 0.01)")
    calibration.add_argument("--base-rate", type=share(0, 1, low_open=True), metavar="R",
                             help="the share of nsfw uploads in production: gives the precision to expect there")
    calibration.add_argument("--json", action="store_true", help="one JSON object instead of the table")

    match = results_command("match", "match the rows in DIR against a hash list of known content, on the hashes "
                                     "they have (rows a run with the list skips as already done)", cmd_match, config=True)
    match.add_argument("--match-list", required=True, metavar="FILE",
                       help="CSV of known content (columns pdq,label), local or in a bucket")

    hashes = results_command("hashes", "the PDQ hashes of the rows in DIR with one decision (or labelled nsfw), as a "
                                       "pdq,label,uri hash list for --match-list", cmd_hashes, config=True)
    chosen = hashes.add_mutually_exclusive_group()
    chosen.add_argument("--decision", choices=("nsfw", "review", "safe"), default="nsfw",
                        help="the rows whose hashes are listed (default nsfw)")
    chosen.add_argument("--labels", metavar="FILE",
                        help="list the rows a reviewer labelled nsfw in this labels file (uri,label; as calibrate "
                             "reads it) instead, whatever their decision")
    hashes.add_argument("--label", help="the label of every line (default: the decision)")
    hashes.add_argument("--out", metavar="FILE", help="the CSV file to write (local, gs://, s3://, ...; default: print it)")

    review = results_command("review", "a page to review the rows in DIR by (DIR/_review/index.html): the review band, "
                                       "an audit sample of the rest, errors; thumbnails blurred until shown, "
                                       "labels for calibrate and hashes", cmd_review, config=True)
    review.add_argument("--decisions", type=review_groups, default=list(REVIEW_GROUPS), metavar="LIST",
                        help="which rows, comma-separated: review (the band), nsfw and safe (audit samples), error "
                             "(errors whose files may show something) (default: all four)")
    review.add_argument("--limit", type=at_least(1), default=1000, metavar="N", help="items per group at most (default 1000)")
    review.add_argument("--audit", type=share(0, 1), default=0.01, metavar="SHARE",
                        help="share of the nsfw rows, and of the safe rows, in the audit sample (default 0.01)")
    review.add_argument("--audit-min", type=at_least(0), default=5, metavar="N",
                        help="at least this many of each in the audit sample, where there are (default 5)")
    review.add_argument("--seed", type=int, default=0, help="the audit sample's draw (default 0: the same sample each time)")
    review.add_argument("--order", choices=REVIEW_ORDERS, default="score",
                        help="order within each group: score (highest first), uri, or manifest and line (default score)")
    review.add_argument("--blur", type=at_least(0), default=24, metavar="PX", help="blur of a thumbnail until shown (default 24)")

    export_rows = results_command("export", "every row of all runs in DIR as one CSV file (spreadsheet-safe)", cmd_export)
    export_rows.add_argument("--csv", required=True, metavar="FILE", help="the CSV file to write (local, gs://, s3://, ...)")

    bench = commands.add_parser("bench", help="model-only throughput on synthetic input",
                                allow_abbrev=False)
    bench.add_argument("--seconds", type=positive_float, default=10.0, help="measuring time after warm-up")
    bench.add_argument("--json", action="store_true", help="one JSON object instead of a sentence")
    add_config_flags(bench)
    bench.set_defaults(func=cmd_bench)

    export = commands.add_parser("export-savedmodel", help="write a SavedModel for TF Serving", allow_abbrev=False)
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--input-type", choices=("tensor", "image_bytes"), default="tensor")
    add_config_flags(export)
    export.set_defaults(func=cmd_export_savedmodel)
    return parser


_exit_status: int | None = None  # what main returned, for the exit


def _exit_without_teardown() -> None:
    """The last step of the command's exit: what the interpreter would still do after its exit
    handlers (freeing every module, TensorFlow's and Beam's native teardown) takes about 1 s and
    keeps nothing, so the process ends here, its streams and logs flushed. Registered first,
    it runs after every exit handler registered later (Beam's, TensorFlow's, the pools' joins
    come before them); logging's, registered before it, is run here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream
            pass
    os._exit(1 if _exit_status is None else _exit_status)


def main(argv=None) -> int:
    """The ``nsfw-scan`` command; ``argv``: its arguments (``None``: this process's command line,
    and the process ends with it: see :func:`_exit_without_teardown`)."""
    global _exit_status
    if argv is None:
        atexit.register(_exit_without_teardown)
    _exit_status = 1  # an uncaught exception's, until the command gives its own
    try:
        _exit_status = _interruptible(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # argparse's usage errors and --help, with the status Python would give
        _exit_status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        raise
    return _exit_status


def _interruptible(argv: list[str]) -> int:
    """The command's status, an interrupt's included (a message says what was kept)."""
    handlers = interrupts.catch_signals()
    try:
        return _main(argv)
    except SystemExit:  # argparse's: see main
        raise
    except BrokenPipeError:  # the reader went away (nsfw-scan report DIR | head -1): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit is quiet too
        return EXIT_OK
    except BaseException as exc:
        signum = interrupts.acknowledge()
        if signum is None:
            raise
        if {"--verbose", "-v"} & set(argv):
            traceback.print_exc()
        command = next((arg for arg in argv if not arg.startswith("-")), None)
        if isinstance(exc, interrupts.Interrupted):
            kept = f": {exc.kept}"
        elif command in ("run", "demo"):
            kept = (": runs (and parts) that finished are kept, and the rows an unfinished one had made durable; "
                    "the same command resumes")
        else:
            kept = ""
        print(f"nsfw-scan: interrupted by {interrupts.name(signum)}{kept}", file=sys.stderr)
        return interrupts.exit_status(signum)
    finally:  # after a signal its handler stays: a second one cannot break the exit (pools joining)
        if interrupts.received() is None:
            interrupts.restore(handlers)


def _parsed(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace, list[str]]:
    """The parser, the arguments and the flags it did not know. Beam's storage flags come from
    Beam's option classes, and importing Beam takes about 1 s of a ``score`` of a local file's
    4-5 s: ``score`` is parsed without them first, and again with them when its command line
    has a flag its own do not cover (or asks for help)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command == "score" and not {"-h", "--help"} & set(argv):
        parser = build_parser(storage_flags=False)
        args, unknown = parser.parse_known_args(argv)
        if not unknown:
            return parser, args, unknown
    parser = build_parser()
    return (parser, *parser.parse_known_args(argv))


def _main(argv: list[str]) -> int:
    configure_logging()
    parser, args, unknown = _parsed(argv)
    if unknown and not getattr(args, "beam_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging(args.verbose, quiet_native=True)
    from ..model.errors import JobFailed, UsageError

    try:
        if getattr(args, "beam_flags", False):  # the flags the command does not know are Beam's pipeline options
            return args.func(args, unknown)
        return args.func(args)
    except BrokenPipeError:
        raise  # not the job's failure: see main
    except (UsageError, JobFailed) as exc:  # a message that says it all
        if interrupts.received():
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"nsfw-scan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERRORS
    except Exception as exc:  # the job failed: one line, the traceback with --verbose
        if interrupts.received():
            raise
        if args.verbose:
            traceback.print_exc()
        # the message's first lines (Beam's validation errors put theirs after a heading line)
        first = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:500]
        print(f"nsfw-scan: error: {type(exc).__name__}: {first}"
              + ("" if args.verbose else " (run with --verbose for the traceback)"), file=sys.stderr)
        return EXIT_ERRORS


if __name__ == "__main__":
    sys.exit(main())
