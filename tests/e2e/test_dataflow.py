"""Dataflow as far as it goes offline: ``nsfw-scan run --config dataflow --template_location gs://...``
builds the job, stages its files and writes it as a classic template into the GCS emulator, without
submitting it. What Dataflow would have received is read back from the bucket and checked: the
job's environment (SDK version, worker image, machine type, threads, workers), the options the
preset promises, the staged package (the setup file's sdist) and the pipeline's steps."""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile

import apache_beam
import pytest
from apache_beam.portability.api import beam_runner_api_pb2

from support.cli import nsfw_scan
from support.stores import gcs_store, image_bytes

pytestmark = pytest.mark.slow

IMAGE = "registry.example/nsfw-scan-worker:1"


def key_of(store, location: str) -> str:
    """The object key of a ``gs://bucket/key`` or ``storage.googleapis.com/bucket/key`` location."""
    prefix = location.split("://", 1)[-1].removeprefix("storage.googleapis.com/")
    bucket, key = prefix.split("/", 1)
    assert bucket == store.bucket, location
    return key


@pytest.fixture(scope="module")
def template(gcs_emulator, tmp_path_factory):
    store = gcs_store(gcs_emulator)
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(2)]
    manifest = store.put("manifests/m.txt", "\n".join(images).encode() + b"\n")
    done = nsfw_scan("run", "--config", "dataflow", "--manifest", manifest, "--output", store.uri("nsfw"),
                     "--project", "nsfw-scan-test", "--region", "europe-west4", "--temp_location", store.uri("tmp"),
                     "--template_location", store.uri("templates/nsfw"), "--sdk_container_image", IMAGE,
                     timeout=600)
    assert done.returncode == 0, done.stderr
    return store, done, json.loads(store.get("templates/nsfw"))


def test_the_job_is_written_as_a_template_and_not_run(template):
    store, done, job = template
    assert f"Dataflow template written to {store.uri('templates/nsfw')}" in done.stdout
    assert job["type"] == "JOB_TYPE_BATCH"
    assert not store.keys("nsfw/"), "nothing is written to --output until the template is launched"


def test_the_environment_is_the_presets_with_this_sdk(template):
    store, _, job = template
    environment = job["environment"]
    assert environment["userAgent"]["version"] == apache_beam.__version__
    assert environment["userAgent"]["name"] == f"Apache Beam Python {sys.version_info[0]}.{sys.version_info[1]} SDK"
    (pool,) = environment["workerPools"]
    assert pool["machineType"] == "n2-standard-4"
    assert pool["numThreadsPerWorker"] == 1
    assert pool["autoscalingSettings"]["maxNumWorkers"] == 20
    assert [image["containerImage"] for image in pool["sdkHarnessContainerImages"]] == [IMAGE]
    options = environment["sdkPipelineOptions"]["options"]
    assert options["runner"] == "DataflowRunner" and options["setup_file"] == "./setup.py"
    assert (options["project"], options["region"]) == ("nsfw-scan-test", "europe-west4")
    assert options["number_of_worker_harness_threads"] == 1 and options["machine_type"] == "n2-standard-4"


def test_the_staged_package_is_this_one(template):
    store, _, job = template
    (pool,) = job["environment"]["workerPools"]
    staged = {package["name"]: package["location"] for package in pool["packages"]}
    with tarfile.open(fileobj=io.BytesIO(store.get(key_of(store, staged["workflow.tar.gz"])))) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"setup.py", "model/network.py", "transforms/scoring.py", "configs/dataflow.yaml"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_the_pipeline_has_the_jobs_steps(template):
    store, _, job = template
    pipeline = beam_runner_api_pb2.Pipeline.FromString(
        store.get(key_of(store, job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"])))
    names = [t.unique_name for t in pipeline.components.transforms.values()]
    for step in ("ReadManifests", "RunInference", "Write"):
        assert any(step in name for name in names), (step, sorted(names)[:40])
    (environment,) = [e for e in pipeline.components.environments.values() if e.urn]
    assert environment.payload and IMAGE.encode() in environment.payload


def test_a_launch_is_told_plainly_and_its_folder_is_left_to_it(template):
    """A launch runs the pipeline only (no lock, no summary, one folder for every launch, no
    durable rows): the command says so. A later run on the same --output leaves the folder of a
    launch that has no results yet alone (it may be writing it), and counts no rows of it."""
    store, done, job = template
    results = re.search(r"launched, it writes its rows to (\S+)\n", done.stdout)[1]
    assert results.startswith(store.uri("nsfw/run-")) and results.endswith("-template"), done.stdout
    for promise in ("takes no lock", "every launch writes into that same folder", "keeps no rows until it finishes",
                    "writes no summary"):
        assert promise in done.stdout, (promise, done.stdout)
    pipeline = beam_runner_api_pb2.Pipeline.FromString(
        store.get(key_of(store, job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"])))
    assert not any("Keep" in t.unique_name.split("/")[-1] for t in pipeline.components.transforms.values())

    # a launch under way: Beam's temporary files in the folder, no results yet
    live = key_of(store, results) + "/beam-temp-part-0123456789/abc"
    store.put(live, b"a launch's rows being written")
    manifest = store.uri("manifests/m.txt")
    later = nsfw_scan("run", "--manifest", manifest, "--output", store.uri("nsfw"), timeout=600)
    assert later.returncode == 0, later.stderr
    assert store.get(live) == b"a launch's rows being written"
    assert f"left {results} as it is: the folder of a Dataflow template's launches" in later.stderr, later.stderr
    assert json.loads(store.get("nsfw/_SUMMARY.json"))["rows"] == 2
