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

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

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
