"""``nsfw-scan score``: JSON lines in input order, exit codes, clear errors."""

import json
import subprocess
import sys

from PIL import Image

from support.cli import nsfw_scan
from support.corpus import HOSTILE, REAL, reference


def test_scores_good_and_bad_paths_in_order(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.touch()
    paths = [REAL / "grace_hopper.jpg", tmp_path / "missing.jpg", empty, tmp_path,
             HOSTILE / "truncated_image.png", REAL / "astronaut.png"]
    result = nsfw_scan("score", "--batch-size", "2", *paths)
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in paths]
    assert all(set(line) == {"path", "score", "decision", "error_kind", "error", "view", "yahoo_score", "pdq", "match",
                             "match_distance"} for line in lines)
    expected = reference("real")
    good = [lines[0], lines[5]]
    for line, name in zip(good, ["grace_hopper.jpg", "astronaut.png"]):
        assert abs(line["yahoo_score"] - expected[name]) < 1e-3  # Yahoo's view; a region may score higher
        assert line["decision"] == "safe" and line["error"] is None and line["score"] >= line["yahoo_score"]
        assert line["view"] == "yahoo" or line["view"].startswith("region ")
        assert len(line["pdq"]) == 64 and line["match"] is None
    kinds = [line["error_kind"] for line in lines[1:5]]
    assert all(line["error"].startswith(line["error_kind"] + ": ") for line in lines[1:5])
    assert kinds == ["not_found", "empty", "not_a_file", "truncated"]
    assert all(line["score"] is None and line["decision"] == "error" for line in lines[1:5])

    one_thread = tmp_path / "no-decoding-ahead.yaml"
    one_thread.write_text("decoding:\n  threads: 0\n")
    again = nsfw_scan("score", "--batch-size", "2", "--config", one_thread, *paths)
    assert again.stdout == result.stdout


def test_all_good_exits_zero_and_thresholds_come_from_config(tmp_path):
    config = tmp_path / "strict.yaml"
    config.write_text("thresholds:\n  safe_below: 0.01\n  nsfw_from: 0.03\n")
    result = nsfw_scan("score", "--config", config, "--views", "whole",  # the whole pictures, as their references
                       REAL / "astronaut.png", REAL / "coffee.png", REAL / "chelsea.png")
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line)["decision"] for line in result.stdout.splitlines()]
    # reference scores: astronaut 0.0317, coffee 0.0130, chelsea 0.0001
    assert decisions == ["nsfw", "review", "safe"]


def test_bad_config_is_one_clear_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("thresholds:\n  safe_below: 0.9\n  nsfw_from: 0.5\nloader: yahoo\n")
    result = nsfw_scan("score", "--config", config, REAL / "astronaut.png")
    assert result.returncode == 2 and result.stdout == ""
    assert f"{config}: thresholds: thresholds must satisfy 0 <= safe_below < nsfw_from" in result.stderr

    config.write_text("treshold: 0.5\n")
    result = nsfw_scan("score", "--config", config, REAL / "astronaut.png")
    assert result.returncode == 2
    assert f"{config}: unknown key 'treshold'" in result.stderr


def test_bad_job_input_is_one_line_exit_2_and_nothing_written(tmp_path):
    from support.corpus import REAL

    good = tmp_path / "good.txt"
    good.write_text(f"{REAL / 'coffee.png'}\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("uri,id\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = tmp_path / "c.yaml"
    cases = [
        (["--manifest", tmp_path / "nope.txt"], "no manifest found at"),
        (["--manifest", empty], "list no URIs"),
        (["--manifest", good, "--config", config, "#unknown"], "unknown key 'batchsize'"),
        (["--manifest", good, "--config", config, "#order"], "safe_below < nsfw_from"),
        (["--manifest", good, "--output", blocker / "out"], "the output folder is not writable"),
    ]
    for args, message in cases:
        if "#unknown" in args:
            config.write_text("batchsize: 3\n")
        if "#order" in args:
            config.write_text("thresholds: {safe_below: 0.8, nsfw_from: 0.2}\n")
        args = [a for a in args if not str(a).startswith("#")]
        if "--output" not in args:
            args += ["--output", tmp_path / "out"]
        result = nsfw_scan("run", *args)
        assert result.returncode == 2, (args, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("nsfw-scan: error: ") and message in last, last
        assert not (tmp_path / "out").exists()


def test_local_files_are_scored_without_importing_beam_and_storage_flags_still_work(tmp_path):
    image = tmp_path / "a.jpg"
    Image.new("RGB", (320, 240), (200, 120, 90)).save(image)
    probe = ("import sys; from nsfw_scan.pipeline.cli import main; status = main(['score', sys.argv[1]]); "
             "print('beam imported' if 'apache_beam' in sys.modules else 'no beam', status)")
    result = subprocess.run([sys.executable, "-c", probe, str(image)], capture_output=True, text=True, timeout=600)
    lines = result.stdout.splitlines()
    assert json.loads(lines[0])["score"] is not None, result.stderr
    assert lines[-1] == "no beam 0"

    # a storage flag (Beam's) on the command line: parsed with Beam's flags, the same result
    flagged = nsfw_scan("score", "--s3_region_name", "us-east-1", image)
    assert flagged.returncode == 0, flagged.stderr
    assert flagged.stdout.splitlines() == lines[:1]
    assert "--s3_endpoint_url" in nsfw_scan("score", "--help").stdout
    unknown = nsfw_scan("score", "--no-such-flag", image)
    assert unknown.returncode == 2 and "unrecognized arguments: --no-such-flag" in unknown.stderr
