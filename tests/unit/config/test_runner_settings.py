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
    from nsfw_scan.transforms.loading import decode_pool

    path = tmp_path / "threads.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: {key}: "):
        load_config(str(path))
    assert decode_pool(load_config(None).decoding.threads)._max_workers >= 1
