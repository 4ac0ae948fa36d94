"""Choosing the runner: local runs never need the network.

Recent Beam's DirectRunner first tries the Prism runner, which downloads a binary at run time.
For ``--runner DirectRunner`` (the default) this job runs Beam's in-process FnApiRunner
directly — what DirectRunner itself falls back to for batch pipelines — which honours
``--direct_num_workers`` and ``--direct_running_mode``. The default is one worker thread (its
images are decoded ahead in a thread pool, see ``transforms/read_and_decode.py``, so every core is busy):
Beam's FnApiRunner fails on large shuffles in ``multi_threading`` mode ("Invalid
PaneInfoEncoding", seen from 300k URIs), which is no faster here anyway. Every other runner is
Beam's own.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import signal
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from ..model.errors import UsageError
from ..storage.compat import add_option_flags, beam_flag_parser, flag_names, provision_with_options
from . import engine_options  # noqa: F401  (declares the engines' own options to Beam)
from .config import ConfigError

LOCAL_RUNNER_NAMES = {None, "", "DirectRunner", "directrunner", "direct"}
# how alike an unknown flag and a known one must be (difflib's ratio) for "did you mean" to name
# it: a typo (--batchsize, --forc) is above 0.9; unrelated words (--frobnicate, --job_name) are near 0.6
SUGGESTION_CUTOFF = 0.75


def local_runner(options: PipelineOptions):
    """Beam's in-process FnApiRunner, its workers given ``options``."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    return fn_runner.FnApiRunner(provision_info=provision_with_options(options))


def make_pipeline(beam_args: list[str]) -> beam.Pipeline:
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner in LOCAL_RUNNER_NAMES:
        standard.runner = "DirectRunner"
        return beam.Pipeline(runner=local_runner(options), options=options)
    return beam.Pipeline(options=options)


def is_local(pipeline: beam.Pipeline) -> bool:
    """Whether ``pipeline`` runs on the local runner (:func:`make_pipeline`'s)."""
    return pipeline.options.view_as(StandardOptions).runner == "DirectRunner"


WORKERS_STOP_S = 60.0  # how long a stopped local run waits for its worker processes to end


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, started by any of its threads (Linux's /proc; none
    elsewhere)."""
    children = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(child) for child in f.read().split()]
    except OSError:
        pass
    return children


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        found.append(todo.pop())
        todo += _children(found[-1])
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def running_children() -> set[int]:
    """This process's children now, and theirs: those of whoever called the job in-process (a
    test's servers, say), which :func:`stop_local_workers` must spare."""
    return set(_descendants(os.getpid()))


def stop_local_workers(spared: set[int] = frozenset(), timeout: float = WORKERS_STOP_S) -> None:
    """After a local run stopped early: its worker processes (``--direct_running_mode
    multi_processing``: the children this process started for the run, all but ``spared``) are
    stopped as Ctrl-C in a terminal stops them, by SIGINT (each then writes the rows it had
    finished, ``transforms/write.py``), and waited for, at most ``timeout`` seconds, so that
    their rows are there before the run's are kept."""
    workers = [pid for pid in _descendants(os.getpid()) if pid not in spared]
    for pid in workers:
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)


def template_location(beam_args: list[str]) -> str | None:
    """Dataflow's ``--template_location``: where the job is written as a classic template, built
    and staged but not submitted."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return PipelineOptions(beam_args).view_as(GoogleCloudOptions).template_location


class JobServerUnreachable(UsageError):
    """No Beam job server answers at the given ``--job_endpoint``."""


def submit(pipeline: beam.Pipeline):
    """``pipeline.run()``; a job server that never answers is named, instead of Beam's bare
    ``FutureTimeoutError``."""
    import grpc

    try:
        return pipeline.run()
    except grpc.FutureTimeoutError:
        endpoint = pipeline.options.get_all_options().get("job_endpoint")
        raise JobServerUnreachable(f"--job_endpoint {endpoint}: no Beam job server answered there; start it, or give the job "
                          "server's jar instead (--flink_job_server_jar / --spark_job_server_jar)") from None


# What an engine says when it lost a machine or a Python worker mid-job (Beam passes the
# engine's reason on as the failed job's message), and how to make the next run survive it.
LOST_WORKER = re.compile(r"TaskManager with id \S+ is no longer reachable|Heartbeat of TaskManager with id \S+ timed out"
                         r"|ExecutorLostFailure|Lost executor|SDK harness \S+ disconnected"
                         r"|Connection unexpectedly closed by remote task manager", re.I)
LOST_WORKER_FIX = {
    "FlinkRunner": "the job was not restarted; to survive that, give the Flink cluster a restart strategy "
                   "(restart-strategy.type: fixed-delay, 10 attempts, 10 s apart, in its config.yaml) and a way "
                   "to replace a lost TaskManager",
    "SparkRunner": "its tasks' retries ran out; to survive that, raise the cluster's spark.task.maxFailures "
                   "(4 by default), or give the executors more memory if the kernel ended them",
}
ENDED = {"FAILED": "failed", "CANCELLED": "was cancelled"}


def engine_failure(exc: BaseException, runner: str | None) -> str | None:
    """In words, why a job failed on a cluster (its engine's reason, and for a lost worker what
    to change), or None where ``exc`` is not a cluster job's failure (the local runner's
    errors, a failed submission)."""
    text = str(exc)
    failed = re.match(r"Pipeline \S+ failed in state (\w+): (.*)", text, re.S)
    if runner in LOCAL_RUNNER_NAMES or not failed:
        return None
    engine = runner.removesuffix("Runner")
    said = f"the {engine} job {ENDED.get(failed[1], f'ended in state {failed[1]}')}: {' '.join(failed[2].split())[:300]}"
    if lost := LOST_WORKER.search(text):
        fix = LOST_WORKER_FIX.get(runner, "to survive that, let the engine retry or restart the job")
        said += f" ({lost[0]}: a worker was lost, and {fix}: docs/runners.md, \"Long runs\")"
    return said


def _beam_flag_parser():
    """The parser Beam's ``PipelineOptions.get_all_options`` uses: every options class loaded."""
    parser = beam_flag_parser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        add_option_flags(cls, parser)
    return parser


def _refused(message: str):
    raise ConfigError(message)


def check_beam_args(beam_args: list[str], own_flags: list[str] = ()) -> None:
    """Beam would only warn about flags it does not know ("Discarding unparseable args") and
    run with its defaults; here a flag that neither nsfw-scan nor Beam knows, or a runner Beam
    cannot load, is a :class:`ConfigError` naming it. The runner is loaded first, so that its
    own options (e.g. Flink's ``--flink_master``) are known."""
    chosen = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    chosen.add_argument("--runner")
    runner = chosen.parse_known_args(beam_args)[0].runner  # before Beam parses a value it cannot take
    if runner not in LOCAL_RUNNER_NAMES:
        from apache_beam.runners.runner import create_runner

        try:
            create_runner(runner)
        except (ValueError, ImportError, AttributeError) as exc:
            raise ConfigError(f"--runner {runner}: Beam cannot load this runner ({exc})") from None
    parser = _beam_flag_parser()
    parser.error = _refused  # a value a flag cannot take is one line, not Beam's usage of every flag
    _, unknown = parser.parse_known_args(beam_args)
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("-")]
    if flags:
        known = [*own_flags, *flag_names(parser)]
        close = difflib.get_close_matches(flags[0], known, n=1, cutoff=SUGGESTION_CUTOFF)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown flag {flags[0]}{hint}: neither nsfw-scan run nor Beam's pipeline options know it")
    if unknown:
        raise ConfigError(f"unexpected argument {unknown[0]!r}: nsfw-scan run takes no positional arguments")
    check_cluster_options(PipelineOptions(beam_args).get_all_options(), runner)


# Beam's portable runners on a cluster of one's own, and the flags that point them at its pieces
# (engines/install.sh builds each of them into .engines/).
JOB_SERVER_JAR_FLAG = {"FlinkRunner": "flink_job_server_jar", "SparkRunner": "spark_job_server_jar"}


def check_cluster_options(options: dict, runner: str | None) -> None:
    """Where Beam would quietly do the wrong thing on a cluster, a :class:`ConfigError` with the
    fix: download a job server jar at run time (no ``--job_endpoint`` and no jar given), start no
    worker (``--environment_type PROCESS`` without the boot program's path), or run a Flink job on
    one task slot (no ``--parallelism``)."""
    name = (runner or "").rsplit(".", 1)[-1]
    jar_flag = JOB_SERVER_JAR_FLAG.get(name)
    if jar_flag and not options.get("job_endpoint") and not options.get(jar_flag):
        raise ConfigError(f"--runner {name}: give --{jar_flag} PATH (engines/install.sh builds it) or --job_endpoint "
                          "HOST:PORT of a running Beam job server; Beam would otherwise download the job server at run time")
    if str(options.get("environment_type") or "").upper() == "PROCESS":
        settings = dict(o.split("=", 1) for o in options.get("environment_options") or [] if "=" in o)
        if not settings.get("process_command") and not options.get("environment_config"):
            raise ConfigError("--environment_type PROCESS: give --environment_option process_command=PATH, the Beam "
                              "Python SDK boot program on every task manager or executor (engines/install.sh builds "
                              "it as .engines/bin/boot)")
    if name == "FlinkRunner" and (options.get("parallelism") or -1) < 1:
        raise ConfigError("--runner FlinkRunner: give --parallelism N, the task slots of the cluster to use "
                          "(Beam otherwise runs the job on one)")
