"""Command-line flags override settings through one table (``pipeline.flags.FLAG_SETTINGS``):
each flag, given on a real command line, changes the configuration keys its entries name and
no other, and every flag of every command is either in the table or no setting at all."""

import argparse
import dataclasses
import os

import pytest

from nsfw_scan.pipeline.cli import build_parser
from nsfw_scan.pipeline.config import Batch, Config
from nsfw_scan.pipeline.flags import FLAG_SETTINGS, config_from_args
from nsfw_scan.storage.options import add_storage_flags

SCORE = ["score", "a.jpg"]
RUN = ["run", "--manifest", "m.txt", "--output", "out"]

# flag dest -> (the command line without the flag, the flag as given, the values of the keys it sets)
CASES = {
    "loader": (SCORE, ["--loader", "fast"], {"loader": "fast"}),
    "views": (SCORE, ["--views", "yahoo"], {"views": "yahoo"}),
    "engine": (SCORE, ["--engine", "onnxruntime"], {"engine": "onnxruntime"}),
    "precision": (SCORE, ["--precision", "bfloat16"], {"tensorflow.precision": "bfloat16"}),
    "exact": (SCORE, ["--exact"], {"cascade.enabled": False}),
    "batch_size": (SCORE, ["--batch-size", "8"], {"batch.max_size": 8, "batch.min_size": 8}),
    "weights": (SCORE, ["--weights", "w.caffemodel"],
                {"weights.path": os.path.abspath("w.caffemodel"), "weights.kind": "caffemodel"}),
    "weights_kind": (SCORE + ["--weights", "/w/open.onnx"], ["--weights-kind", "caffemodel"],
                     {"weights.kind": "caffemodel"}),
    "trust_weights_pickle": (SCORE, ["--trust-weights-pickle"], {"weights.trusted": True}),
    "uri_column": (RUN, ["--uri-column", "url"], {"manifest.uri_column": "url"}),
    "partitions": (RUN, ["--partitions", "3"], {"partitions": 3}),
    "decode_threads": (RUN, ["--decode-threads", "0"], {"decoding.threads": 0}),
    "content_dedup": (RUN, ["--content-dedup"], {"content_dedup": True}),
    "match_list": (RUN, ["--match-list", "known.csv"], {"matching.list": os.path.abspath("known.csv")}),
}

# Flags that are no setting: what to read and write, how to run, what to print.
NOT_SETTINGS = {"help", "verbose", "config", "paths", "manifest", "output", "rescore_errors", "force",
                "break_lock", "directory", "report_dir", "csv", "seconds", "json", "input_type",
                "labels", "target_precision", "missed", "base_rate", "decision", "label", "out",
                "decisions", "limit", "audit", "audit_min", "seed", "order", "blur"}  # review's choice of rows


def settings(config) -> dict:
    """Every setting of a configuration by its dotted key."""
    flat = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            flat.update({f"{field.name}.{key}": v for key, v in settings(value).items()})
        else:
            flat[field.name] = value
    return flat


def config_of(argv: list[str]) -> Config:
    args, _ = build_parser().parse_known_args(argv)
    return config_from_args(args)


def test_the_table_names_only_real_settings_and_every_case_is_tested():
    keys = set(settings(Config()))
    assert {key for _, key, _ in FLAG_SETTINGS} <= keys
    assert {dest for dest, _, _ in FLAG_SETTINGS} == set(CASES)


@pytest.mark.parametrize("dest", sorted(CASES))
def test_each_flag_changes_exactly_the_keys_its_entries_name(dest):
    before, flag, expected = CASES[dest]
    without, with_flag = settings(config_of(before)), settings(config_of(before + flag))
    changed = {key: value for key, value in with_flag.items() if without[key] != value}
    assert set(changed) == {key for d, key, _ in FLAG_SETTINGS if d == dest}
    assert changed == expected


def test_batch_size_keeps_the_default_smallest_batch_when_larger():
    batch = config_of(SCORE + ["--batch-size", "100"]).batch
    assert batch == Batch(min_size=Batch().min_size, max_size=100)
    assert config_of(SCORE + ["--batch-size", "8"]).batch == Batch(min_size=8, max_size=8)


def test_weights_kind_from_the_suffix_unless_given():
    assert config_of(SCORE + ["--weights", "w.npy", "--trust-weights-pickle"]).weights.kind == "npy"
    assert config_of(SCORE + ["--weights", "w.bin"]).weights.kind == "onnx"
    assert config_of(SCORE + ["--weights", "gs://b/w.caffemodel"]).weights.path == "gs://b/w.caffemodel"
    given = config_of(SCORE + ["--weights", "w.npy", "--weights-kind", "caffemodel"]).weights
    assert (given.kind, given.path) == ("caffemodel", os.path.abspath("w.npy"))


def test_every_flag_of_every_command_is_a_table_entry_or_no_setting():
    storage = argparse.ArgumentParser(add_help=False)
    add_storage_flags(storage)
    not_settings = NOT_SETTINGS | {action.dest for action in storage._actions}
    in_table = {dest for dest, _, _ in FLAG_SETTINGS}
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    seen = set()
    for name, parser in commands.choices.items():
        for action in parser._actions:
            assert action.dest in in_table | not_settings, f"nsfw-scan {name} {action.option_strings}"
            seen.add(action.dest)
    assert in_table <= seen


def test_review_takes_known_groups_in_the_given_order_and_names_an_unknown_one(capsys):
    parser = build_parser()
    args = parser.parse_args(["review", "out", "--decisions", "error, review,error", "--limit", "7"])
    assert (args.decisions, args.limit, args.order, args.audit) == (["error", "review"], 7, "score", 0.01)
    assert parser.parse_args(["review", "out"]).decisions == ["review", "nsfw", "safe", "error"]
    for bad in (["--decisions", "review,unsure"], ["--limit", "0"], ["--order", "size"], ["--audit", "2"]):
        with pytest.raises(SystemExit) as exit:
            parser.parse_args(["review", "out", *bad])
        assert exit.value.code == 2
    assert "unsure: choose from review,nsfw,safe,error" in capsys.readouterr().err
