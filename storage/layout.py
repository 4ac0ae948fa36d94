"""The output folder's names, in one place.

    DIR/_LOCK                      the lock of the run in progress
    DIR/_SUMMARY.json              the latest run's summary
    DIR/_report/                   what ``nsfw-scan report`` writes by default
    DIR/_review/                   ``nsfw-scan review``'s page (index.html) and its thumbs/
    DIR/run-<UTC time>[-partKofN]/ one folder per run (or part of a partitioned run; a Dataflow
                                   template's launches: run-<build time>-template/):
        part-*.parquet             its results, once it finished (Beam renames them into place)
        _rows/rows-*.parquet       rows made durable while it ran; kept only if it was killed,
                                   and then salvaged into part files by the next run
        _SUMMARY.json              its own summary
"""

from __future__ import annotations

import datetime

LOCK_FILE = "_LOCK"
SUMMARY_FILE = "_SUMMARY.json"
REPORT_DIR = "_report"
REVIEW_DIR = "_review"  # nsfw-scan review's page and thumbnails
CALIBRATION_DIR = "_calibration"  # nsfw-scan calibrate's thresholds.yaml and chart
RUN_PREFIX = "run-"
RUN_GLOB = RUN_PREFIX + "*"
PART_PREFIX = "part"  # result files: part-*.parquet directly in a run folder
RESULT_GLOB = PART_PREFIX + "-*.parquet"
ROWS_DIR = "_rows"  # durable row files of a run that has not finished
ROWS_PREFIX = "rows-"
SALVAGED_PART = PART_PREFIX + "-salvaged.parquet"
TEMPLATE_SUFFIX = "-template"  # the run folder of a Dataflow template's launches: never taken for a killed run's


def run_stamp() -> str:
    """The UTC time a run folder is named after, to the microsecond (``20261201T221428678535Z``)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def run_folder_name(stamp: str, part: int = 0, parts: int = 1) -> str:
    """``run-<stamp>`` or, for part ``part`` (from 0) of ``parts``, ``run-<stamp>-partKKKofNNN``."""
    name = RUN_PREFIX + stamp
    return name if parts == 1 else f"{name}-part{part:03d}of{parts:03d}"


def template_folder_name(stamp: str) -> str:
    """The run folder a Dataflow template built at ``stamp`` writes into, at every launch."""
    return run_folder_name(stamp) + TEMPLATE_SUFFIX


def is_template_folder(path: str) -> bool:
    return path.rstrip("/").endswith(TEMPLATE_SUFFIX)


def is_result_file(name: str) -> bool:
    """A name directly in a run folder that holds results (the run finished)."""
    return name.startswith(PART_PREFIX + "-")
