"""Runner presets and thread settings: the Beam options the packaged presets give, and the
impossible settings the configuration refuses, naming the file and the key."""

import pytest


def test_runner_presets_become_beam_options():
    from nsfw_scan.pipeline.config import load_config, packaged_configs

    assert packaged_configs() == ["dataflow", "flink", "spark"]
    dataflow = load_config("dataflow")
    assert "--runner=DataflowRunner" in dataflow.beam_args()
    assert "--setup_file=./setup.py" in dataflow.beam_args()
    assert dataflow.tensorflow.intra_op_threads == dataflow.tensorflow.parallel_batches == 1
    assert "--runner=FlinkRunner" in load_config("flink").beam_args()
    assert "--runner=SparkRunner" in load_config("spark").beam_args()


@pytest.mark.parametrize("text,key", [
    ("decoding:\n  threads: -1\n", "decoding"),
    ("decoding:\n  ahead: 0\n", "decoding"),
    ("tensorflow:\n  parallel_batches: -2\n", "tensorflow"),
    ("engine: tensorflw\n", "engine"),
])
def test_impossible_thread_settings_name_the_file_and_key(text, key, tmp_path):
    from nsfw_scan.pipeline.config import ConfigError, load_config
    from nsfw_scan.transforms.read_and_decode import decode_pool

    path = tmp_path / "threads.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: {key}: "):
        load_config(str(path))
    assert decode_pool(load_config(None).decoding.threads)._max_workers >= 1


def test_a_cluster_jobs_failure_names_the_engines_reason_and_for_a_lost_worker_the_fix():
    """The failed job's message as Beam's portable runner raises it (the engine's reason after
    the state), from a Flink job that lost a TaskManager with no restart strategy."""
    from nsfw_scan.pipeline.runners import engine_failure

    lost = RuntimeError("Pipeline BeamApp-root-1207_947d failed in state FAILED: org.apache.flink.runtime.jobmaster."
                        "JobMasterException: TaskManager with id 127.0.0.1:39665-60a5e9 is no longer reachable.")
    said = engine_failure(lost, "FlinkRunner")
    assert said.startswith("the Flink job failed: org.apache.flink.runtime.jobmaster.JobMasterException: TaskManager")
    assert "a worker was lost" in said and "restart strategy" in said and "docs/runners.md" in said
    spark = RuntimeError("Pipeline B failed in state FAILED: org.apache.spark.SparkException: Job aborted due to stage "
                         "failure: Task 0 in stage 2.0 failed 4 times (ExecutorLostFailure (executor 3 exited))")
    assert "spark.task.maxFailures" in engine_failure(spark, "SparkRunner")
    other = RuntimeError("Pipeline B failed in state FAILED: java.lang.OutOfMemoryError: Java heap space")
    assert engine_failure(other, "SparkRunner") == "the Spark job failed: java.lang.OutOfMemoryError: Java heap space"
    assert engine_failure(lost, "DirectRunner") is None  # the local runner's errors are its own
    assert engine_failure(ValueError("no pipeline"), "FlinkRunner") is None
