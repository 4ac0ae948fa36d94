"""The configuration: the shipped YAML and the code's defaults say the same thing."""

import yaml

from nsfw_scan.pipeline.config import Config, default_config_text, load_config


def test_default_yaml_states_the_code_defaults():
    """Every key of configs/default.yaml holds the value the code would use without it, and
    the YAML names every setting there is (a key missing there is a setting users cannot find)."""
    assert load_config(None) == Config()
    shipped = yaml.safe_load(default_config_text())

    def keys(obj, prefix=""):
        import dataclasses

        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if dataclasses.is_dataclass(value):
                yield from keys(value, f"{prefix}{field.name}.")
            else:
                yield f"{prefix}{field.name}"

    def yaml_keys(mapping, prefix=""):
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                yield from yaml_keys(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    assert set(yaml_keys(shipped)) == set(keys(Config()))


def test_sections_are_the_objects_the_code_reads_with():
    """The reading and http sections are the storage layer's own settings, and the pixel and
    frame limits default to the model layer's, so that each default is written once; the
    runner presets keep the default batch sizes."""
    from nsfw_scan.model.pictures.preprocess import DEFAULT_MAX_PIXELS
    from nsfw_scan.model.pictures.views import ViewPolicy
    from nsfw_scan.pipeline.config import Batch
    from nsfw_scan.storage.http_reading import HttpSettings
    from nsfw_scan.storage.read import ReadPolicy

    config = load_config(None)
    assert type(config.reading) is ReadPolicy and config.reading == ReadPolicy()
    assert type(config.http) is HttpSettings and config.http == HttpSettings()
    assert config.limits.max_pixels == DEFAULT_MAX_PIXELS
    assert config.view_policy() == ViewPolicy()
    for preset in ("dataflow", "flink", "spark"):
        assert load_config(preset).batch == Batch()


def test_own_thresholds_out_of_order_are_one_error_naming_the_key(tmp_path):
    import pytest

    from nsfw_scan.pipeline.config import ConfigError, load_config

    for text, key in (("regions: {safe_below: 0.9, nsfw_from: 0.3}\n", "regions"),
                      ("video: {safe_below: 0.0, nsfw_from: 0.8}\n", "video"),
                      ("regions: {min_side: 0}\n", "regions.min_side")):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"{path}: {key}: "):
            load_config(str(path))
