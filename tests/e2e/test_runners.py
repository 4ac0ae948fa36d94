"""The same job on other execution paths: threads, worker processes, the portable Fn API path."""

import pytest

from support.corpus import HOSTILE, REAL, corpus_files
from support.jobs import assert_same_outcomes, by_uri, model_loads, run_job

SAMPLE = [REAL / f for f in corpus_files(REAL)] + [HOSTILE / f for f in corpus_files(HOSTILE)[:60]]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("manifest") / "sample.txt"
    path.write_text("\n".join(map(str, SAMPLE)) + "\n")
    return path


@pytest.fixture(scope="module")
def in_process(manifest, tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("in-process"), manifest,
                   extra=["--direct_num_workers", "1", "--direct_running_mode", "in_memory"])


def test_in_process_loads_each_model_once(in_process):
    summary, rows = in_process
    assert summary["model_loads"] in model_loads(rows) == {2}  # the first pass's model and the exact one
    assert len(rows) == len(SAMPLE) and summary["scored"] > len(SAMPLE) // 2


SHARED_MODEL = ("model_sharing:\n  large_model: true\npipeline_options:\n"
                "  direct_num_workers: 2\n  direct_running_mode: multi_processing\n")


DECODE_ONE_AT_A_TIME = "decoding:\n  threads: 3\n  ahead: 1\n"


@pytest.mark.parametrize("flags,config,loads", [
    pytest.param(["--decode-threads", "0"], None, {1}, id="decoding-in-the-worker-thread"),
    pytest.param([], DECODE_ONE_AT_A_TIME, {1}, id="decoding-ahead-by-one-element"),
    pytest.param(["--direct_num_workers", "2", "--direct_running_mode", "multi_threading", "--batch-size", "8"],
                 None, {1}, id="threads-share-one-model"),
    pytest.param(["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
                 None, {1, 2}, id="worker-processes-one-model-each", marks=pytest.mark.slow),
    pytest.param(["--runner", "PortableRunner", "--job_endpoint", "embed", "--environment_type", "LOOPBACK"],
                 None, {1}, id="portable-runner-embedded-job-service", marks=pytest.mark.slow),
    pytest.param([], SHARED_MODEL, {1}, id="large-model-one-copy-across-processes", marks=pytest.mark.slow),
])
def test_other_execution_paths_give_the_same_rows(flags, config, loads, manifest, tmp_path, in_process):
    if config:
        (tmp_path / "config.yaml").write_text(config)
        flags = flags + ["--config", tmp_path / "config.yaml"]
    summary, rows = run_job(tmp_path, manifest, extra=flags)
    assert summary["model_loads"] in model_loads(rows, loads)
    assert_same_outcomes(by_uri(rows), by_uri(in_process[1]))
    assert summary["bytes_read"] == in_process[0]["bytes_read"] > 0
