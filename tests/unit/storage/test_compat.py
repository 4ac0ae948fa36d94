"""Each private name ``storage/compat.py`` reaches for, against the installed Beam and Python:
it exists and behaves as the job uses it. A library upgrade that moves one fails here, by name."""

from __future__ import annotations

import argparse
import logging
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, S3Options
from apache_beam.testing.util import assert_that, equal_to

from nsfw_scan.storage import compat


def test_add_option_flags_declares_a_beam_options_class_flags():
    parser = argparse.ArgumentParser(add_help=False)
    compat.add_option_flags(S3Options, parser.add_argument_group("storage"))
    args = parser.parse_args(["--s3_endpoint_url", "http://127.0.0.1:9", "--s3_region_name", "r"])
    assert args.s3_endpoint_url == "http://127.0.0.1:9" and args.s3_region_name == "r"
    assert args.s3_access_key_id is None  # every flag of the class, with Beam's defaults


def test_beam_flag_parser_parses_as_pipeline_options_do():
    parser = compat.beam_flag_parser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        compat.add_option_flags(cls, parser)  # value-provider arguments included
    known, unknown = parser.parse_known_args(["--runner=DirectRunner", "--s3_region_name=r", "--no_such_flag=1"])
    assert known.runner == "DirectRunner" and known.s3_region_name == "r"
    assert unknown == ["--no_such_flag=1"]


def test_flag_names_lists_every_option_string_groups_included():
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--output")
    parser.add_argument_group("storage").add_argument("--project")
    parser.add_mutually_exclusive_group().add_argument("-f", "--force", action="store_true")
    assert set(compat.flag_names(parser)) == {"-h", "--help", "--output", "--project", "-f", "--force"}


def test_record_no_google_credentials_fills_beams_cache_once():
    from apache_beam.internal.gcp import auth

    cache = auth._Credentials
    with cache._credentials_lock:
        saved = cache._credentials, cache._credentials_init
        cache._credentials, cache._credentials_init = None, False
    try:
        assert compat.record_no_google_credentials()
        assert cache._credentials_init is True and cache._credentials is None
        # Beam answers from its cache now, at once, without looking for credentials
        assert cache.get_service_credentials(PipelineOptions([])) is None
        found = object()
        cache._credentials = found  # a lookup's result is kept
        assert compat.record_no_google_credentials() and cache._credentials is found
    finally:
        with cache._credentials_lock:
            cache._credentials, cache._credentials_init = saved
    assert isinstance(cache._credentials_lock, type(threading.Lock()))


def test_provision_with_options_carries_the_options_to_a_runner():
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    options = PipelineOptions(["--s3_region_name=somewhere", "--direct_num_workers=1"])
    provision = compat.provision_with_options(options)
    assert provision.provision_info.pipeline_options["beam:option:s3_region_name:v1"] == "somewhere"
    with beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options) as pipeline:
        assert_that(pipeline | beam.Create([1, 2]) | beam.Map(lambda x: x * 10), equal_to([10, 20]))


def test_worker_log_relay_is_the_logger_beams_local_job_service_logs_with():
    from apache_beam.runners.portability import local_job_service

    assert compat.WORKER_LOG_RELAY == local_job_service.__name__
    relay = compat.worker_log_relay()
    assert isinstance(relay, logging.Logger) and relay.name == local_job_service.__name__
    assert local_job_service._LOGGER is relay  # the logger its worker relay writes to
