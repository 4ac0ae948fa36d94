"""Every step of the job's graph that touches a file carries the pipeline's storage options
(``transforms/storage_step.py``): the graph ``build`` makes is walked, not run (no scorer is
loaded), with every step that touches files in it (the cascade, content de-duplication, a hash
list, durable rows, earlier results)."""

import apache_beam as beam
import pytest
from apache_beam.io.parquetio import ReadAllFromParquetBatched
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor

from nsfw_scan.pipeline.config import load_config
from nsfw_scan.pipeline.run import build
from nsfw_scan.storage.options import StorageOptions
from nsfw_scan.transforms.content import _SplitByContent
from nsfw_scan.transforms.load_steps import HashFile, LoadImage
from nsfw_scan.transforms.manifest_plan import plan_manifests
from nsfw_scan.transforms.manifests import ReadManifest
from nsfw_scan.transforms.storage_step import UseStorage, WithStorage
from nsfw_scan.transforms.write import _KeepRows

STORAGE_FLAGS = ["--s3_endpoint_url=http://127.0.0.1:9", "--s3_region_name=test-region", "--project=test-project"]

# our DoFns that touch files, by what they touch
FILE_DOFNS = {ReadManifest: "reads manifests", LoadImage: "reads uploads", HashFile: "reads uploads",
              _SplitByContent: "reads the hash list", _KeepRows: "writes rows"}
EARLIER = "reads earlier results"  # Beam's ReadAllFromParquetBatched, fused with a UseStorage on each side
RESULTS = "writes results"  # Beam's Write, of our sink


class FileSteps(PipelineVisitor):
    """The steps of a graph that touch files: ``(what, step, the storage options it carries)``."""

    def __init__(self):
        self.found = []
        self._consumers = {}  # PCollection -> the steps that take it
        self._reads = []

    def visit_transform(self, node):
        for pcoll in node.inputs:
            self._consumers.setdefault(pcoll, []).append(node)
        transform = node.transform
        if isinstance(transform, beam.ParDo) and type(transform.fn) in FILE_DOFNS:
            self.found.append((FILE_DOFNS[type(transform.fn)], node.full_label, _storage(transform.fn)))

    def enter_composite_transform(self, node):
        if isinstance(node.transform, ReadAllFromParquetBatched):
            self._reads.append(node)
        if isinstance(node.transform, beam.io.Write):
            self.found.append((RESULTS, node.full_label, _storage(node.transform.sink)))

    def leave_pipeline(self):
        """The reads of Parquet files: the options of the steps fused before and after them (a
        step that is not a ``UseStorage`` carries none)."""
        for read in self._reads:
            (before,) = (pcoll.producer for pcoll in read.inputs)
            after = [step for pcoll in read.outputs.values() for step in self._consumers.get(pcoll, [])]
            for step in [before, *after]:
                fn = getattr(step.transform, "fn", None)
                self.found.append((EARLIER, f"{read.full_label} via {step.full_label}",
                                   _storage(fn) if isinstance(fn, UseStorage) else None))

    def leave_composite_transform(self, node):
        if node.parent is None:  # the graph's root: every step has been seen
            self.leave_pipeline()


def _storage(fn):
    return getattr(fn, "storage", None)


@pytest.fixture
def graph(tmp_path):
    """The job's graph with every step that touches files, built in a pipeline with storage flags."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"uri\n{tmp_path / 'a.png'}\n")
    hashes = tmp_path / "hashes.csv"
    hashes.write_text("pdq,label\n" + "0" * 64 + ",known\n")
    config = load_config(None, {"content_dedup": True, "matching": {"list": str(hashes)},
                                "checkpoint": {"enabled": True}})
    assert config.cascades
    pipeline = beam.Pipeline(options=PipelineOptions(STORAGE_FLAGS))
    build(pipeline, plan_manifests([str(manifest)]), config, "model", str(tmp_path / "out" / "run-1"),
          earlier=[str(tmp_path / "out" / "run-0" / "part-00000-of-00001.parquet")])
    return pipeline


def test_every_step_that_touches_a_file_carries_the_pipelines_storage_options(graph):
    expected = StorageOptions.from_pipeline_options(graph.options)
    assert expected.as_dict() == {"s3_endpoint_url": "http://127.0.0.1:9", "s3_region_name": "test-region",
                                  "project": "test-project"}
    steps = FileSteps()
    graph.visit(steps)
    assert {what for what, _, _ in steps.found} == {*FILE_DOFNS.values(), EARLIER, RESULTS}
    without = [f"{step} ({what})" for what, step, storage in steps.found if storage != expected]
    assert not without, f"steps that touch files without the pipeline's storage options: {without}"


def test_every_dofn_of_ours_that_sets_storage_options_has_them(graph):
    class WithStorageSteps(PipelineVisitor):
        def __init__(self):
            self.storage = {}

        def visit_transform(self, node):
            if isinstance(getattr(node.transform, "fn", None), WithStorage):
                self.storage[node.full_label] = node.transform.fn.storage

    steps = WithStorageSteps()
    graph.visit(steps)
    assert len(steps.storage) > 10
    assert set(steps.storage.values()) == {StorageOptions.from_pipeline_options(graph.options)}


def test_a_dofn_that_touches_files_refuses_to_start_without_storage_options(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri\nx.png\n")
    with pytest.raises(RuntimeError, match="ReadManifest touches files but was given no storage options"):
        ReadManifest(plan_manifests([str(manifest)])).setup()
