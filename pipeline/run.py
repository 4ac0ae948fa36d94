"""``nsfw-scan run``: manifests -> bytes -> preprocessed arrays -> batched scores -> Parquet."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections import Counter

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from ..model.errors import RETRYABLE, JobFailed
from ..storage.compat import flag_names
from ..storage.layout import REPORT_DIR, run_folder_name, run_stamp, template_folder_name
from ..storage.lock import OutputLock
from ..storage.options import StorageOptions
from ..storage.paths import absolute, shown
from ..storage.results_folder import (
    Written,
    drop_superseded_errors,
    earlier_rows,
    finish_killed_runs,
    remove_folders,
    result_files,
    run_folders,
    run_result_files,
    unfinished_templates,
    written_rows,
)
from ..storage.rows import remove_rows
from ..storage.schema import output_schema
from ..transforms.content import ContentDedup, EarlierScores, FirstPassScores
from ..transforms.dedup import NewEntries
from ..transforms.earlier import DoneKeys
from ..transforms.known_content import hash_list
from ..transforms.load_steps import HashFile, LoadImage
from ..transforms.manifest_plan import ManifestPlan, plan_manifests
from ..transforms.manifests import ReadManifests
from ..transforms.progress import CountOutcomes
from ..transforms.scoring import FirstPass, OpenNsfwModelHandler, ScoreImages
from ..transforms.write import FinishRows, KeepRows, WriteResults, flush_kept_rows, forget_kept_rows
from . import interrupts
from .config import Config, ConfigError
from .flags import add_run_flags, config_from_args
from .runners import (
    check_beam_args,
    engine_failure,
    is_local,
    make_pipeline,
    running_children,
    stop_local_workers,
    submit,
    template_location,
)
from .summary import (
    accounting_problem,
    format_summary,
    latest_results,
    read_summary,
    summarize,
    write_summary,
)

log = logging.getLogger(__name__)

# What a run's scores depend on beyond the model's steps, recorded in every result file it writes
# (the Parquet schema's metadata, under SCORING_KEY), so that ``nsfw-scan redecide`` scores a row
# again as its own run did: views, frames, videos, regions, limits, weights (``model`` names their
# digest) and the hash list.
SCORING_KEY = b"nsfw_scan.scoring"
SCORING_SECTIONS = ("views", "frames", "video", "regions", "limits", "weights", "matching")


def scoring_record(config: Config) -> dict[bytes, bytes]:
    """The schema metadata recording ``config``'s ``SCORING_SECTIONS``."""
    record = {name: getattr(config, name) for name in SCORING_SECTIONS}
    record = {name: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for name, v in record.items()}
    return {SCORING_KEY: json.dumps(record, sort_keys=True).encode()}


def build(pipeline: beam.Pipeline, plan: ManifestPlan, config: Config, model: str, results_dir: str,
          earlier: list[str] = (), rescore_errors: bool = False, partition: tuple[int, int] = (0, 1),
          spec=None):
    """The job's graph; returns the PCollection of result rows. ``model``: the id the configured
    model will give its scores (content de-duplication reuses only earlier scores of that model;
    rows name the model that actually ran). ``earlier``: result files of earlier runs; URIs that
    have a row there are not read again. ``partition``: (i, K), this graph handles the URIs whose
    stable hash is i modulo K. ``spec``: what loads the scorer (anything with ``name``,
    ``exact``, ``expected_model_id()`` and ``load()``, as in ``model.engine_specs``; by default the
    configured one, with the cascade's first pass where it applies)."""
    cascades = config.cascades and spec is None  # a spec given scores every row itself

    def model_handler(spec, load_on_first_batch: bool = False) -> OpenNsfwModelHandler:
        return OpenNsfwModelHandler(
            spec, min_batch_size=config.batch.min_size, max_batch_size=config.batch.max_size,
            large_model=config.model_sharing.large_model, model_copies=config.model_sharing.copies,
            load_on_first_batch=load_on_first_batch,
        )

    # with the cascade, only rows near a threshold need the exact model: loaded at its first batch
    handler = model_handler(spec or config.engine_spec(), load_on_first_batch=cascades)
    loading, ahead = config.loading(), config.decoding.ahead or config.batch.max_size
    load = LoadImage(loading, ahead)
    first_pass = first_pass_scores = None
    if cascades:
        cheap_loading, cheap_spec = config.first_pass()
        first_pass = FirstPass(LoadImage(cheap_loading, ahead), model_handler(cheap_spec), config.first_pass_rule())
        first_pass_scores = FirstPassScores(cheap_spec.model_ids(), config.cascade.loader, config.first_pass_rule())

    entries = {
        "entries": pipeline | "ReadManifests" >> ReadManifests(plan, partition),
        "done": pipeline | "EarlierRuns" >> DoneKeys(list(earlier), rescore_errors, partition),
    } | "NewEntries" >> NewEntries()
    # their number, for progress lines; reshuffled after it is taken (``CountOutcomes`` says why)
    total = beam.pvalue.AsSingleton(entries | "CountNew" >> beam.combiners.Count.Globally())
    entries = entries | "Spread" >> beam.Reshuffle()
    part = f"part {partition[0] + 1} of {partition[1]}" if partition[1] > 1 else ""
    schema = output_schema(plan.columns).with_metadata(scoring_record(config))
    keep = (KeepRows(results_dir, schema, config.checkpoint.rows, config.checkpoint.seconds, is_local(pipeline))
            if config.checkpoint.enabled else None)
    finish = FinishRows(CountOutcomes(config.progress_every, results_dir, total, part), keep)
    score = ScoreImages(load, handler, config.thresholds, finish, first_pass)
    if config.content_dedup:
        rows = {
            "entries": entries,
            "earlier": pipeline | "EarlierScores" >> EarlierScores(list(earlier), model, config.loader,
                                                                     config.view_policy(), first_pass_scores),
        } | "ContentDedup" >> ContentDedup(HashFile(loading, ahead), score, finish, config.thresholds,
                                                         config.matching)
    else:
        rows = entries | "ScoreImages" >> score
    rows | "Write" >> WriteResults(results_dir, schema)
    return rows


def check_output_dir(directory: str) -> None:
    """Local output folders must be creatable and writable before any work starts."""
    if "://" in directory:
        return
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"{shown(directory)}: --output names a file; give a folder (new or one of earlier results)")
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".nsfw-scan-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise ConfigError(f"{directory}: the output folder is not writable ({exc.strerror}); choose another --output")


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the job, its command line resolved: what to read, where to write, how."""

    manifests: tuple[str, ...]  # patterns; local ones absolute (workers run in other folders)
    output: str
    config: Config
    beam_args: tuple[str, ...]  # Beam's pipeline options, the configuration's presets first
    rescore_errors: bool = False
    force: bool = False
    break_lock: bool = False
    config_file: str | None = None  # the --config it was given (a file or a preset's name), if any


def job_from_flags(argv=None) -> Job:
    """``nsfw-scan run``'s command line -> a ``Job``: the job's own flags, the configuration
    they pick, and the rest as Beam's pipeline options (a flag neither knows is an error)."""
    parser = argparse.ArgumentParser(prog="nsfw-scan run", allow_abbrev=False)
    add_run_flags(parser)
    args, beam_args = parser.parse_known_args(argv)
    config = config_from_args(args)
    beam_args = config.beam_args() + beam_args
    check_beam_args(beam_args, flag_names(parser))
    return Job(tuple(absolute(p) for p in args.manifest), absolute(args.output), config, tuple(beam_args),
               args.rescore_errors, args.force, args.break_lock, args.config)


def run(argv=None, spec=None) -> dict:
    """Run the job a command line describes; returns the summary. ``spec``: as for
    ``build``."""
    return run_job(job_from_flags(argv), spec)


def run_job(job: Job, spec=None) -> dict:
    """Run the job; returns the summary (also written to ``<output>/_SUMMARY.json``).

    With ``partitions: K`` the URIs are split by a stable hash into K parts, run one after the
    other as K pipelines, each finishing its own results folder: memory is bounded by a K-th
    of the URIs (the local runner shuffles in memory), and a killed job keeps the parts that
    finished. De-duplication stays exact, since equal URIs hash to the same part."""
    config = job.config
    storage = StorageOptions.from_beam_args(job.beam_args).apply()  # before anything touches a file
    plan = plan_manifests(list(job.manifests), config.manifest.uri_column)
    if config.matching.list:  # a bad list fails here, naming its line, before anything runs
        hashes = hash_list(config.matching)  # kept: workers in this process use it
        log.info("hash list %s: %d hashes, matched within %d bits", shown(config.matching.list), len(hashes),
                 config.matching.max_distance)
    model = (spec or config.engine_spec()).expected_model_id()
    if template := template_location(list(job.beam_args)):
        return write_template(job, plan, model, template, spec)
    created = "://" not in job.output and not os.path.exists(job.output)
    try:
        check_output_dir(job.output)
        with OutputLock(job.output, storage, job.break_lock) as lock:
            return _run_locked(job, plan, model, lock, spec)
    finally:  # a failed run leaves no output folder it made (its lock is gone by now)
        if created and os.path.isdir(job.output) and not os.listdir(job.output):
            os.rmdir(job.output)


def _run_locked(job: Job, plan: ManifestPlan, model: str, lock: OutputLock, spec=None) -> dict:
    salvaged, removed = finish_killed_runs(job.output)
    for folder, rows in salvaged.items():
        log.info("kept %d rows of %s, a run that did not finish; the rest is scored now", rows, shown(folder))
    for folder in removed:
        log.info("removed %s: a run that did not finish, with no rows kept", shown(folder))
    launches = unfinished_templates(job.output)
    for folder in launches:
        log.info("left %s as it is: the folder of a Dataflow template's launches, without results yet (a launch may "
                 "be writing it; remove it once none runs)", shown(folder))
    replaced = [f for f in run_folders(job.output) if f not in launches] if job.force else []
    earlier = [] if job.force else result_files(job.output)
    stamp = run_stamp()
    parts = job.config.partitions
    folders = [beam.io.filesystems.FileSystems.join(job.output, run_folder_name(stamp, i, parts)) for i in range(parts)]

    results, runner, started = [], None, time.monotonic()
    others = running_children()  # this process's own children (a caller's servers): never the runner's workers
    try:
        for i, results_dir in enumerate(folders):
            pipeline = make_pipeline(list(job.beam_args))
            runner = pipeline.options.view_as(StandardOptions).runner
            build(pipeline, plan, job.config, model, results_dir, earlier, job.rescore_errors, (i, parts), spec)
            result = submit(pipeline)
            result.wait_until_finish()
            forget_kept_rows()  # its result files hold every row now
            remove_rows(results_dir)
            results.append(result)
            if parts > 1:
                log.info("part %d of %d finished", i + 1, parts)
            if interrupts.received():  # a stop that the pipeline's code caught and went past
                raise KeyboardInterrupt
    except BaseException as exc:
        stopped = interrupts.acknowledge()  # from here on no signal cuts the clean-up short
        flush_kept_rows()  # the rows finished in this process, and in the local runner's worker processes
        if runner == "DirectRunner":
            stop_local_workers(spared=others)
        durable = keep_unfinished(job.output, folders)
        if stopped:
            raise interrupts.Interrupted(_kept(job.output, stamp, folders, results, durable)) from None
        if failure := engine_failure(exc, runner):
            raise JobFailed(f"{failure}; {_kept(job.output, stamp, folders, results, durable)}") from exc
        raise
    seconds = time.monotonic() - started
    # the rows as the result files hold them (a runner that retried work counts it twice in its metrics)
    written = {folder: written_rows(folder) for folder in folders}
    total = Written(sum((w.decisions for w in written.values()), Counter()),
                    sum((w.errors for w in written.values()), Counter()))

    summary = summarize(results, seconds, {"output": shown(job.output), "model": model,
                                           "loader": job.config.loader, "views": job.config.views,
                                           "thresholds": dataclasses.asdict(job.config.thresholds),
                                           "config": job.config_file,
                                           "cascade": job.config.cascades and spec is None,
                                           "match_list": job.config.matching.list and shown(job.config.matching.list),
                                           "manifests": len(plan.files),
                                           "runner": runner, "engine": job.config.engine, "partitions": parts,
                                           "earlier_result_files": len(earlier),
                                           "salvaged_rows": sum(salvaged.values())}, total)
    if problem := accounting_problem(summary):  # told, never a reason to throw rows away
        log.warning("%s", problem)

    lock.check()  # never remove or rewrite anything unless this run still holds the folder
    if job.force and replaced:
        log.info("removed %d earlier runs (%d files): replaced by this run", len(replaced), remove_folders(replaced))
        report = beam.io.filesystems.FileSystems.join(job.output, REPORT_DIR)
        if "://" in report or os.path.isdir(report):  # the report of the replaced runs describes none that is left
            if remove_folders([report]):
                log.info("removed %s, the report of the replaced runs (nsfw-scan report makes it again)", shown(report))
    elif job.rescore_errors and earlier:
        dropped = drop_superseded_errors(earlier, [f for d in folders for f in run_result_files(d)])
        log.info("%d earlier error rows replaced by this run's rows", dropped)

    # a pipeline (or part) that wrote no row leaves no folder of empty result files
    empty = [folder for folder in folders if written[folder].rows == 0]
    remove_folders([folder for folder in empty if folder in run_folders(job.output)])
    kept = [folder for folder in folders if folder not in empty]
    results_name = None if not kept else f"{shown(job.output).rstrip('/')}/{run_folder_name(stamp)}" + ("" if parts == 1 else "-part*")
    left = earlier_rows(earlier, RETRYABLE)  # none with --force: they are replaced
    this = (job.config.thresholds.safe_below, job.config.thresholds.nsfw_from)
    summary = {"output": summary.pop("output"), "results": results_name, **summary,
               # error rows that may pass if read again: this run's, and earlier runs' still in the folder
               "retryable": {kind: n for kind, n in summary["errors_by_kind"].items() if kind in RETRYABLE},
               "retryable_earlier": {} if job.rescore_errors else left.errors,
               **({"accounting_problem": problem} if problem else {}),
               # earlier rows in the folder decided at other thresholds than this run's (null: not recorded)
               "earlier_thresholds": [{"safe_below": pair and pair[0], "nsfw_from": pair and pair[1], "rows": n}
                                      for pair, n in left.decided_at.items() if pair != this]}
    if not kept and (latest := latest_results(read_summary(job.output))):
        summary["latest_results"] = latest  # a run with nothing new keeps the latest results' summary in view
    for folder in kept:  # each run keeps its own summary; the latest is also at the top
        write_summary(folder, summary)
    write_summary(job.output, summary)
    return summary


def write_template(job: Job, plan: ManifestPlan, model: str, template: str, spec=None) -> dict:
    """Build the job for Dataflow and write it as a classic template to ``template`` (with its
    files staged under ``--staging_location``/``--temp_location``) without submitting it; returns
    what was written. The template holds this moment's plan: the manifests' files and the URIs
    that earlier runs in ``--output`` had scored. A launch runs the pipeline only: nothing of
    this command runs then, so a launch takes no lock on ``--output``, writes into the one folder
    named here (``run-<build time>-template``, which a later ``run`` never takes for a killed
    run's), writes no summary, and keeps no rows until it finishes (no durable rows: nothing
    could salvage them). The steps after a run (replacing earlier runs for ``--force``,
    dropping superseded errors, parts) belong to a submitted run, so those flags are refused."""
    runner = PipelineOptions(list(job.beam_args)).view_as(StandardOptions).runner
    if runner != "DataflowRunner":
        raise ConfigError(f"--template_location is Dataflow's: use it with --config dataflow (the runner is {runner})")
    if job.force or job.rescore_errors or job.config.partitions > 1:
        raise ConfigError("--template_location writes one pipeline, without the steps after a run: "
                          "drop --force, --rescore-errors and --partitions")
    results_dir = beam.io.filesystems.FileSystems.join(job.output, template_folder_name(run_stamp()))
    config = dataclasses.replace(job.config, checkpoint=dataclasses.replace(job.config.checkpoint, enabled=False))
    pipeline = make_pipeline(list(job.beam_args))
    build(pipeline, plan, config, model, results_dir, result_files(job.output), False, (0, 1), spec)
    submit(pipeline)
    return {"template": template, "output": shown(job.output), "results": shown(results_dir), "model": model,
            "runner": runner, "manifests": len(plan.files)}


def keep_unfinished(output: str, folders: list[str]) -> int:
    """After a failed or interrupted run: the rows its unfinished folders had made durable
    become their results (finished parts of a partitioned run stay as they are), folders with
    none go. Returns the rows kept."""
    salvaged, _ = finish_killed_runs(output, folders)
    for folder, rows in salvaged.items():
        log.info("kept %d rows of this run in %s; the same command scores the rest", rows, shown(folder))
    return sum(salvaged.values())


def _kept(output: str, stamp: str, folders: list[str], results: list, durable: int) -> str:
    """What an interrupted run keeps, in words: the parts that finished (those with rows), and
    the rows the unfinished one had made durable (``durable``, kept by ``keep_unfinished``)."""
    rows = [written_rows(folder).rows for folder in folders[:len(results)]]  # the parts that finished
    remove_folders([folder for folder, n in zip(folders, rows) if n == 0 and folder in run_folders(output)])
    resume = f"the same command resumes (rows already in {shown(output)} are not scored again)"
    where = f"{shown(output).rstrip('/')}/{run_folder_name(stamp)}"
    if not any(rows) and not durable:
        return f"this run kept no rows (it had finished none, nor made any durable yet); {resume}"
    if len(folders) == 1:
        return (f"kept its {rows[0]} rows in {where} (it had finished); {resume}" if rows else
                f"kept the {durable} rows it had made durable, in {where}; {resume}")
    finished = f"{sum(rows)} rows of {len([n for n in rows if n])} finished parts of {len(folders)}"
    return (f"kept {finished}" + (f" and {durable} rows the unfinished part had made durable" if durable else "")
            + f" in {where}-part*; {resume}")


def print_run(summary: dict) -> None:
    if "template" in summary:
        print(f"Dataflow template written to {summary['template']}: the job was built and its files staged, "
              f"not submitted; launched, it writes its rows to {summary['results']}\n"
              f"A launch runs the pipeline only: it takes no lock on {summary['output']} (run nothing else on it "
              f"meanwhile), every launch writes into that same folder (launch it once; build a template per launch), "
              f"it keeps no rows until it finishes (no durable rows: a stopped launch keeps none) and writes no "
              f"summary. A later nsfw-scan run counts its rows once it has finished, and leaves the folder alone "
              f"before that.")
        return
    print(format_summary(summary))
