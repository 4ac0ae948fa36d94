"""``nsfw-scan run``: manifests -> bytes -> preprocessed arrays -> batched scores -> Parquet."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from collections import Counter
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from ..model.errors import RETRYABLE, JobFailed
from ..storage.compat import flag_names
from ..storage.filesystems import FileSystems
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
from .flags import config_from_args, run_parser
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
    EarlierThresholds,
    RunSummary,
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


def build(pipeline: beam.Pipeline, plan: ManifestPlan, config: Config, model: str, results_dir: str, *,
          earlier: list[str] = (), rescore_errors: bool = False, partition: tuple[int, int] = (0, 1),
          spec=None):
    """The job's graph (a run's parts: ``RunPlan.build``); returns the PCollection of result rows.
    ``model``: the id the configured model will give its scores (content de-duplication reuses
    only earlier scores of that model; rows name the model that actually ran). ``earlier``: result
    files of earlier runs; URIs that have a row there are not read again. ``partition``: (i, K),
    this graph handles the URIs whose stable hash is i modulo K. ``spec``: what loads the scorer
    (anything with ``name``, ``exact``, ``expected_model_id()`` and ``load()``, as in
    ``model.engine_specs``; by default the configured one, with the cascade's first pass where it applies)."""
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
        rule = config.first_pass_rule()  # the cascade's, and that of the earlier first-pass scores it reuses
        first_pass = FirstPass(LoadImage(cheap_loading, ahead), model_handler(cheap_spec), rule)
        first_pass_scores = FirstPassScores(cheap_spec.model_ids(), config.cascade.loader, rule)

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
class RunPlan:
    """One run of the job, its command line parsed once and resolved: what to read, where to
    write, how."""

    manifests: ManifestPlan  # their files, from patterns made absolute where local (workers run in other folders)
    output: str  # absolute where local
    config: Config
    beam_args: tuple[str, ...]  # Beam's pipeline options, the configuration's presets first
    storage: StorageOptions  # applied: every file is read and written with them
    model: str  # the id the scorer will give its scores
    stamp: str  # the time the run's folders are named after
    spec: Any = None  # what loads the scorer, as for ``build``; None: the configured one
    rescore_errors: bool = False
    force: bool = False
    break_lock: bool = False
    config_file: str | None = None  # the --config it was given (a file or a preset's name), if any

    @property
    def partitions(self) -> int:
        return self.config.partitions

    @property
    def cascade(self) -> bool:
        """Whether the cascade's first pass runs (a spec given scores every row itself)."""
        return self.config.cascades and self.spec is None

    @property
    def folders(self) -> list[str]:
        """The run's results folders, one per part."""
        return [FileSystems.join(self.output, run_folder_name(self.stamp, i, self.partitions))
                for i in range(self.partitions)]

    @property
    def shown_folder(self) -> str:
        """The run's folder as shown (its parts' folders add ``-partKKKofNNN``)."""
        return f"{shown(self.output).rstrip('/')}/{run_folder_name(self.stamp)}"

    def build(self, pipeline: beam.Pipeline, results_dir: str, *, earlier: list[str] = (), part: int = 0):
        """The graph of part ``part`` of the run, writing into ``results_dir`` (``build``'s)."""
        return build(pipeline, self.manifests, self.config, self.model, results_dir, earlier=earlier,
                     rescore_errors=self.rescore_errors, partition=(part, self.partitions), spec=self.spec)


def plan_run(args: argparse.Namespace, beam_args, spec=None) -> RunPlan:
    """``nsfw-scan run``'s flags as parsed (``flags.add_run_flags``) and the rest of its command
    line, Beam's pipeline options (a flag neither knows is an error) -> the run's plan. The
    storage options are applied here, before anything touches a file. ``spec``: as for ``build``."""
    config = config_from_args(args)
    beam_args = tuple(config.beam_args() + list(beam_args))
    check_beam_args(list(beam_args), flag_names(run_parser()))
    output = absolute(args.output)
    storage = StorageOptions.from_beam_args(beam_args).apply()
    manifests = plan_manifests([absolute(p) for p in args.manifest], config.manifest.uri_column)
    if config.matching.list:  # a bad list fails here, naming its line, before anything runs
        hashes = hash_list(config.matching)  # kept: workers in this process use it
        log.info("hash list %s: %d hashes, matched within %d bits", shown(config.matching.list), len(hashes),
                 config.matching.max_distance)
    model = (spec or config.engine_spec()).expected_model_id()
    return RunPlan(manifests, output, config, beam_args, storage, model, run_stamp(), spec,
                   rescore_errors=args.rescore_errors, force=args.force, break_lock=args.break_lock,
                   config_file=args.config)


def run(argv=None, spec=None) -> RunSummary | TemplateWritten:
    """Run the job a command line describes; returns the summary. ``spec``: as for ``build``."""
    args, beam_args = run_parser().parse_known_args(argv)
    return run_plan(plan_run(args, beam_args, spec))


def run_plan(plan: RunPlan) -> RunSummary | TemplateWritten:
    """Run the job; returns the summary (also written to ``<output>/_SUMMARY.json``).

    With ``partitions: K`` the URIs are split by a stable hash into K parts, run one after the
    other as K pipelines, each finishing its own results folder: memory is bounded by a K-th
    of the URIs (the local runner shuffles in memory), and a killed job keeps the parts that
    finished. De-duplication stays exact, since equal URIs hash to the same part."""
    if template := template_location(list(plan.beam_args)):
        return write_template(plan, template)
    created = "://" not in plan.output and not os.path.exists(plan.output)
    try:
        check_output_dir(plan.output)
        with OutputLock(plan.output, plan.storage, plan.break_lock) as lock:
            return _run_locked(plan, lock)
    finally:  # a failed run leaves no output folder it made (its lock is gone by now)
        if created and os.path.isdir(plan.output) and not os.listdir(plan.output):
            os.rmdir(plan.output)


def _run_locked(plan: RunPlan, lock: OutputLock) -> RunSummary:
    """The run's steps, ``lock`` held on its output folder."""
    salvaged, launches = salvage_killed_runs(plan.output)
    replaced = [f for f in run_folders(plan.output) if f not in launches] if plan.force else []
    earlier = [] if plan.force else result_files(plan.output)
    ran = run_parts(plan, earlier)
    # the rows as the result files hold them (a runner that retried work counts it twice in its metrics)
    written = {folder: written_rows(folder) for folder in plan.folders}
    summary = account(plan, ran, written, earlier, salvaged)
    lock.check()  # never remove or rewrite anything unless this run still holds the folder
    if plan.force and replaced:
        remove_replaced_runs(plan.output, replaced)
    elif plan.rescore_errors and earlier:
        replace_superseded_errors(plan, earlier)
    kept = remove_empty_folders(plan, written)
    summary = summarise(plan, summary, kept, earlier)
    for folder in kept:  # each run keeps its own summary; the latest is also at the top
        write_summary(folder, summary)
    write_summary(plan.output, summary)
    return summary


def salvage_killed_runs(output: str) -> tuple[dict[str, int], list[str]]:
    """Earlier runs in ``output`` that did not finish: their durable rows become their results
    (folders with none go). Returns the rows kept by folder, and the folders of Dataflow
    templates' launches, left as they are."""
    salvaged, removed = finish_killed_runs(output)
    for folder, rows in salvaged.items():
        log.info("kept %d rows of %s, a run that did not finish; the rest is scored now", rows, shown(folder))
    for folder in removed:
        log.info("removed %s: a run that did not finish, with no rows kept", shown(folder))
    launches = unfinished_templates(output)
    for folder in launches:
        log.info("left %s as it is: the folder of a Dataflow template's launches, without results yet (a launch may "
                 "be writing it; remove it once none runs)", shown(folder))
    return salvaged, launches


@dataclasses.dataclass(frozen=True)
class PartsRun:
    """What the run's pipelines did: their results, the runner, and the time they took."""

    results: list
    runner: str | None
    seconds: float


def run_parts(plan: RunPlan, earlier: list[str]) -> PartsRun:
    """Each part of the run as a pipeline of its own, one after the other. A failed or
    interrupted run keeps what it can (``keep_unfinished``) and says what."""
    folders = plan.folders
    results, runner, started = [], None, time.monotonic()
    others = running_children()  # this process's own children (a caller's servers): never the runner's workers
    try:
        for i, results_dir in enumerate(folders):
            pipeline = make_pipeline(list(plan.beam_args))
            runner = pipeline.options.view_as(StandardOptions).runner
            plan.build(pipeline, results_dir, earlier=earlier, part=i)
            result = submit(pipeline)
            result.wait_until_finish()
            forget_kept_rows()  # its result files hold every row now
            remove_rows(results_dir)
            results.append(result)
            if plan.partitions > 1:
                log.info("part %d of %d finished", i + 1, plan.partitions)
            if interrupts.received():  # a stop that the pipeline's code caught and went past
                raise KeyboardInterrupt
    except BaseException as exc:
        stopped = interrupts.acknowledge()  # from here on no signal cuts the clean-up short
        flush_kept_rows()  # the rows finished in this process, and in the local runner's worker processes
        if runner == "DirectRunner":
            stop_local_workers(spared=others)
        durable = keep_unfinished(plan.output, folders)
        if stopped:
            raise interrupts.Interrupted(_kept(plan, len(results), durable)) from None
        if failure := engine_failure(exc, runner):
            raise JobFailed(f"{failure}; {_kept(plan, len(results), durable)}") from exc
        raise
    return PartsRun(results, runner, time.monotonic() - started)


def account(plan: RunPlan, ran: PartsRun, written: dict[str, Written], earlier: list[str],
            salvaged: dict[str, int]) -> RunSummary:
    """The run's summary from its pipelines' metrics and the rows its result files hold
    (``written``, by folder); what does not add up is told, never a reason to throw rows away."""
    total = Written(sum((w.decisions for w in written.values()), Counter()),
                    sum((w.errors for w in written.values()), Counter()))
    config = plan.config
    summary = summarize(ran.results, ran.seconds, total, output=shown(plan.output), model=plan.model,
                        loader=config.loader, views=config.views, thresholds=config.thresholds,
                        config=plan.config_file, cascade=plan.cascade,
                        match_list=config.matching.list and shown(config.matching.list),
                        manifests=len(plan.manifests.files), runner=ran.runner, engine=config.engine,
                        partitions=plan.partitions, earlier_result_files=len(earlier),
                        salvaged_rows=sum(salvaged.values()))
    if problem := accounting_problem(summary):
        log.warning("%s", problem)
    return dataclasses.replace(summary, accounting_problem=problem)


def remove_replaced_runs(output: str, replaced: list[str]) -> None:
    """``--force``: the earlier runs this run replaces go, and the report that describes them."""
    log.info("removed %d earlier runs (%d files): replaced by this run", len(replaced), remove_folders(replaced))
    report = FileSystems.join(output, REPORT_DIR)
    if "://" in report or os.path.isdir(report):  # the report of the replaced runs describes none that is left
        if remove_folders([report]):
            log.info("removed %s, the report of the replaced runs (nsfw-scan report makes it again)", shown(report))


def replace_superseded_errors(plan: RunPlan, earlier: list[str]) -> None:
    """``--rescore-errors``: earlier error rows whose URI this run has redone go."""
    dropped = drop_superseded_errors(earlier, [f for d in plan.folders for f in run_result_files(d)])
    log.info("%d earlier error rows replaced by this run's rows", dropped)


def remove_empty_folders(plan: RunPlan, written: dict[str, Written]) -> list[str]:
    """A pipeline (or part) that wrote no row leaves no folder of empty result files; returns
    the folders kept."""
    empty = [folder for folder in plan.folders if written[folder].rows == 0]
    remove_folders([folder for folder in empty if folder in run_folders(plan.output)])
    return [folder for folder in plan.folders if folder not in empty]


def summarise(plan: RunPlan, summary: RunSummary, kept: list[str], earlier: list[str]) -> RunSummary:
    """The summary completed with where its rows are (``kept``: the folders with rows), the error
    rows that may pass if read again, the earlier rows decided at other thresholds, and, for a
    run with nothing new, the latest results' summary (kept in view)."""
    left = earlier_rows(earlier, RETRYABLE)  # none with --force: they are replaced
    this = (plan.config.thresholds.safe_below, plan.config.thresholds.nsfw_from)
    return dataclasses.replace(
        summary, results=(plan.shown_folder + ("" if plan.partitions == 1 else "-part*")) if kept else None,
        retryable={kind: n for kind, n in summary.errors_by_kind.items() if kind in RETRYABLE},
        retryable_earlier={} if plan.rescore_errors else left.errors,
        earlier_thresholds=[EarlierThresholds(pair and pair[0], pair and pair[1], n)
                            for pair, n in left.decided_at.items() if pair != this],
        latest_results=None if kept else latest_results(read_summary(plan.output)))


@dataclasses.dataclass(frozen=True)
class TemplateWritten:
    """What ``write_template`` wrote: the template, and where its launches write their rows."""

    template: str
    output: str
    results: str
    model: str
    runner: str
    manifests: int  # manifest files it reads


def write_template(plan: RunPlan, template: str) -> TemplateWritten:
    """Build the job for Dataflow and write it as a classic template to ``template`` (with its
    files staged under ``--staging_location``/``--temp_location``) without submitting it; returns
    what was written. The template holds this moment's plan: the manifests' files and the URIs
    that earlier runs in ``--output`` had scored. A launch runs the pipeline only: nothing of
    this command runs then, so a launch takes no lock on ``--output``, writes into the one folder
    named here (``run-<build time>-template``, which a later ``run`` never takes for a killed
    run's), writes no summary, and keeps no rows until it finishes (no durable rows: nothing
    could salvage them). The steps after a run (replacing earlier runs for ``--force``,
    dropping superseded errors, parts) belong to a submitted run, so those flags are refused."""
    runner = PipelineOptions(list(plan.beam_args)).view_as(StandardOptions).runner
    if runner != "DataflowRunner":
        raise ConfigError(f"--template_location is Dataflow's: use it with --config dataflow (the runner is {runner})")
    if plan.force or plan.rescore_errors or plan.partitions > 1:
        raise ConfigError("--template_location writes one pipeline, without the steps after a run: "
                          "drop --force, --rescore-errors and --partitions")
    results_dir = FileSystems.join(plan.output, template_folder_name(plan.stamp))
    config = dataclasses.replace(plan.config, checkpoint=dataclasses.replace(plan.config.checkpoint, enabled=False))
    pipeline = make_pipeline(list(plan.beam_args))
    dataclasses.replace(plan, config=config).build(pipeline, results_dir, earlier=result_files(plan.output))
    submit(pipeline)
    return TemplateWritten(template, shown(plan.output), shown(results_dir), plan.model, runner,
                           len(plan.manifests.files))


def keep_unfinished(output: str, folders: list[str]) -> int:
    """After a failed or interrupted run: the rows its unfinished folders had made durable
    become their results (finished parts of a partitioned run stay as they are), folders with
    none go. Returns the rows kept."""
    salvaged, _ = finish_killed_runs(output, folders)
    for folder, rows in salvaged.items():
        log.info("kept %d rows of this run in %s; the same command scores the rest", rows, shown(folder))
    return sum(salvaged.values())


def _kept(plan: RunPlan, finished: int, durable: int) -> str:
    """What an interrupted run keeps, in words: the ``finished`` parts (those with rows), and
    the rows the unfinished one had made durable (``durable``, kept by ``keep_unfinished``)."""
    output, folders = plan.output, plan.folders
    rows = [written_rows(folder).rows for folder in folders[:finished]]
    remove_folders([folder for folder, n in zip(folders, rows) if n == 0 and folder in run_folders(output)])
    resume = f"the same command resumes (rows already in {shown(output)} are not scored again)"
    where = plan.shown_folder
    if not any(rows) and not durable:
        return f"this run kept no rows (it had finished none, nor made any durable yet); {resume}"
    if len(folders) == 1:
        return (f"kept its {rows[0]} rows in {where} (it had finished); {resume}" if rows else
                f"kept the {durable} rows it had made durable, in {where}; {resume}")
    finished_rows = f"{sum(rows)} rows of {len([n for n in rows if n])} finished parts of {len(folders)}"
    return (f"kept {finished_rows}" + (f" and {durable} rows the unfinished part had made durable" if durable else "")
            + f" in {where}-part*; {resume}")


def print_run(summary: RunSummary | TemplateWritten) -> None:
    if isinstance(summary, TemplateWritten):
        print(f"Dataflow template written to {summary.template}: the job was built and its files staged, "
              f"not submitted; launched, it writes its rows to {summary.results}\n"
              f"A launch runs the pipeline only: it takes no lock on {summary.output} (run nothing else on it "
              f"meanwhile), every launch writes into that same folder (launch it once; build a template per launch), "
              f"it keeps no rows until it finishes (no durable rows: a stopped launch keeps none) and writes no "
              f"summary. A later nsfw-scan run counts its rows once it has finished, and leaves the folder alone "
              f"before that.")
        return
    print(format_summary(summary))
