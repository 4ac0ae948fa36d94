"""Choosing the runner: local runs never need the network.

Recent Beam's DirectRunner first tries the Prism runner, which downloads a binary at run time.
For ``--runner DirectRunner`` (the default) this job runs Beam's in-process FnApiRunner
directly — what DirectRunner itself falls back to for batch pipelines — which honours
``--direct_num_workers`` and ``--direct_running_mode``. The default is one worker thread (its
images are decoded ahead in a thread pool, see ``transforms/load.py``, so every core is busy):
Beam's FnApiRunner fails on large shuffles in ``multi_threading`` mode ("Invalid
PaneInfoEncoding", seen from 300k URIs), which is no faster here anyway. Every other runner is
Beam's own.
"""

from __future__ import annotations

import difflib

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from .config import ConfigError

LOCAL_RUNNER_NAMES = {None, "", "DirectRunner", "directrunner", "direct"}


def local_runner(options: PipelineOptions):
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def make_pipeline(beam_args: list[str]) -> beam.Pipeline:
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner in LOCAL_RUNNER_NAMES:
        standard.runner = "DirectRunner"
        return beam.Pipeline(runner=local_runner(options), options=options)
    return beam.Pipeline(options=options)


def _beam_flag_parser():
    """The parser Beam's ``PipelineOptions.get_all_options`` uses: every options class loaded."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def check_beam_args(beam_args: list[str], own_flags: list[str] = ()) -> None:
    """Beam would only warn about flags it does not know ("Discarding unparseable args") and
    run with its defaults; here a flag that neither nsfw-scan nor Beam knows, or a runner Beam
    cannot load, is a :class:`ConfigError` naming it. The runner is loaded first, so that its
    own options (e.g. Flink's ``--flink_master``) are known."""
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
    if runner not in LOCAL_RUNNER_NAMES:
        from apache_beam.runners.runner import create_runner

        try:
            create_runner(runner)
        except (ValueError, ImportError, AttributeError) as exc:
            raise ConfigError(f"--runner {runner}: Beam cannot load this runner ({exc})") from None
    parser = _beam_flag_parser()
    _, unknown = parser.parse_known_args(beam_args)
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("-")]
    if flags:
        known = [*own_flags, *parser._option_string_actions]  # pylint: disable=protected-access
        close = difflib.get_close_matches(flags[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown flag {flags[0]}{hint}: neither nsfw-scan run nor Beam's pipeline options know it")
    if unknown:
        raise ConfigError(f"unexpected argument {unknown[0]!r}: nsfw-scan run takes no positional arguments")
