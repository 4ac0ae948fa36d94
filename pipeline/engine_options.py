"""Options that Beam's Java runners read and its Python SDK does not declare, declared here so
that ``nsfw-scan run`` takes them and they reach the job server.

Beam's Python SDK sends the job server every option it knows (``PortableRunner``: each known
option not None, as ``beam:option:NAME:v1``, which the Java side reads into its options class,
``number_of_execution_retries`` as ``numberOfExecutionRetries``). An option no Python class
declares is dropped, unless the job is submitted as an uber jar (``--flink_submit_uber_jar``,
``--spark_submit_uber_jar``), where Beam keeps unknown options; ``nsfw-scan run`` refuses a flag
that nothing declares, so without these a user could not set Flink's retries or checkpointing
per job at all. Declared, they are known on the command line (so still checked, typos refused)
and sent in every submission mode. Each is None unless given, so a job that does not name one
gets the engine's own default.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions


def _true(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


# Flink (Beam's FlinkPipelineOptions). A batch job's restarts are the cluster's restart strategy
# (its config.yaml, restart-strategy.*): Beam's batch translation applies neither
# number_of_execution_retries (its streaming one does) nor a --flink_conf_dir's restart strategy
# (seen on Flink 1.19 with Beam 2.62: the job's configuration shows "Cluster level default
# restart strategy"); docs/runners.md
FLINK = (
    ("number_of_execution_retries", int, "times Flink restarts a failed streaming job (a batch job's restarts "
                                         "are the cluster's restart-strategy)"),
    ("execution_retry_delay", int, "milliseconds between a streaming job's restarts"),
    ("checkpointing_interval", int, "milliseconds between checkpoints (-1: none)"),
    ("checkpoint_timeout_millis", int, "milliseconds a checkpoint may take"),
    ("min_pause_between_checkpoints", int, "milliseconds between the end of a checkpoint and the next"),
    ("fail_on_checkpointing_errors", _true, "whether a failed checkpoint fails the job (true/false)"),
    ("execution_mode_for_batch", str, "PIPELINED or BATCH: how Flink exchanges data between a batch job's stages"),
    ("max_bundle_size", int, "elements per bundle at most"),
    ("max_bundle_time_mills", int, "milliseconds a bundle stays open at most"),
)
# Spark (Beam's SparkPipelineOptions)
SPARK = (
    ("bundle_size", int, "bytes per bundle of a Spark batch job's sources (0: Spark's default parallelism)"),
    ("storage_level", str, "how Spark caches datasets the job reuses (e.g. MEMORY_ONLY, MEMORY_AND_DISK)"),
    ("checkpoint_dir", str, "where Spark writes checkpoints"),
    ("app_name", str, "the job's name in Spark's UI (Beam's appName; default: the job's name and an id)"),
)


def _declare(parser: argparse.ArgumentParser, engine: str, options: tuple) -> None:
    for name, kind, help in options:
        try:
            parser.add_argument(f"--{name}", type=kind, default=None, help=f"{engine}: {help}")
        except argparse.ArgumentError:  # a Beam release that declares it itself
            pass


# Beam collects the options of PipelineOptions' direct subclasses: each class is one of them
class FlinkJobOptions(PipelineOptions):
    """Beam's Flink runner's own options, as flags of ``nsfw-scan run``."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        _declare(parser, "Flink", FLINK)


class SparkJobOptions(PipelineOptions):
    """Beam's Spark runner's own options, as flags of ``nsfw-scan run``."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        _declare(parser, "Spark", SPARK)
