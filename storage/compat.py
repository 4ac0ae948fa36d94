"""Every use of a private name of Beam or of the standard library, each behind one function.

Where no public route exists, the job reaches into a library here and nowhere else, and
``tests/unit/storage/test_compat.py`` checks each function against the installed library (the name exists
and behaves as used), so that an upgrade that moves one fails there, by name, first.

It lives in ``storage/``, the package the others build on (``transforms/`` and ``pipeline/``
import it, it imports neither). Nothing is imported at module level: ``pipeline/logs.py``
uses it before Beam is loaded.
"""

from __future__ import annotations

import argparse
import logging

# The logger through which Beam's local runner, in ``multi_processing`` mode, relays its worker
# processes' log records (``local_job_service._LOGGER``, named after its module).
WORKER_LOG_RELAY = "apache_beam.runners.portability.local_job_service"


def add_option_flags(options_class, parser) -> None:
    """Declare a Beam ``PipelineOptions`` class's flags on ``parser`` (an ``argparse`` parser or
    argument group): Beam's hook ``_add_argparse_args``, the one place each class lists them."""
    options_class._add_argparse_args(parser)  # pylint: disable=protected-access


def beam_flag_parser(**kwargs) -> argparse.ArgumentParser:
    """An empty parser of the kind Beam's ``PipelineOptions`` parse with
    (``_BeamArgumentParser``: it also takes Beam's value-provider arguments)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    return _BeamArgumentParser(**kwargs)


def flag_names(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string ``parser`` knows (``--output``, ``-h``, ...), its groups' included
    (``argparse`` keeps them in ``_option_string_actions``; it has no public list)."""
    return list(parser._option_string_actions)  # pylint: disable=protected-access


def record_no_google_credentials() -> bool:
    """Record in Beam's per-process cache of Google credentials (``auth._Credentials``) that
    there are none, unless it already holds a lookup's result, so that Beam's GCS client
    connects anonymously at once instead of retrying the lookup. Returns whether the cache was
    found (without the gcp extra, or in a Beam that keeps it elsewhere, nothing is done)."""
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # no gcp extra
        return False
    cache = getattr(auth, "_Credentials", None)
    if cache is None or not hasattr(cache, "_credentials_init"):
        return False
    with cache._credentials_lock:
        if not cache._credentials_init:
            cache._credentials, cache._credentials_init = None, True
    return True


def provision_with_options(options):
    """What Beam's in-process ``FnApiRunner`` gives its workers as their provision info, carrying
    ``options`` (a ``PipelineOptions``): how its worker processes get the pipeline's options
    when the runner is made directly (``fn_runner.ExtendedProvisionInfo``, with the options
    encoded as Beam's job service encodes them)."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))


def worker_log_relay() -> logging.Logger:
    """The logger that relays the log records of the local runner's worker processes."""
    return logging.getLogger(WORKER_LOG_RELAY)
