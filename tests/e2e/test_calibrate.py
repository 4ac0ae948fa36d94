"""``nsfw-scan calibrate`` on a real run over committed images with a labels file: the table, the
chart and ``thresholds.yaml``, and a second run that decides with those thresholds."""

import csv
import json
import re
import shutil

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from nsfw_scan.pipeline.calibrate import read_labels
from nsfw_scan.pipeline.config import ConfigError
from support.cli import nsfw_scan
from support.corpus import HOSTILE, REAL, corpus_files


def test_calibrate_a_labelled_sample_then_run_with_its_thresholds(tmp_path):
    uris = [str(REAL / f) for f in corpus_files(REAL)] + [str(HOSTILE / f) for f in corpus_files(HOSTILE)]
    manifest, first = tmp_path / "sample.txt", tmp_path / "sample-results"
    manifest.write_text("\n".join(uris + [str(tmp_path / "gone.jpg")]) + "\n")
    done = nsfw_scan("run", "--manifest", manifest, "--output", first, "--exact")
    assert done.returncode == 0, done.stderr
    rows = {r["uri"]: r for r in pq.read_table(first).to_pylist()}
    every = [r["score"] for r in rows.values() if r["score"] is not None]
    # the rows a team's reviewers labelled: here those whose score no other row has (no ties, so
    # the thresholds below are exact)
    scored = sorted((r for r in rows.values() if r["score"] is not None and every.count(r["score"]) == 1),
                    key=lambda r: r["score"])
    # a team's labels: its reviewers called four uploads nsfw, the two highest-scoring and two
    # further down (the 10th and 14th highest)
    assert len(scored) >= 16
    nsfw = {scored[i]["uri"] for i in (-1, -2, -10, -14)}
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["uri", "label", "reviewer"])
        for i, r in enumerate(scored):
            label = ("nsfw", "1", "TRUE")[i % 3] if r["uri"] in nsfw else ("safe", "0", "false")[i % 3]
            writer.writerow([r["uri"], label, "ana"])
        writer.writerow([str(tmp_path / "gone.jpg"), "safe", "ana"])  # its row is an error
        writer.writerow([str(tmp_path / "never-scanned.jpg"), "nsfw", "ana"])  # no row at all

    table = nsfw_scan("calibrate", first, "--labels", labels, "--precision", "0.75", "--missed", "0.25",
                      "--base-rate", "0.02")
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert f"labels           {len(scored) + 2}: {len(scored)} scored (4 nsfw, {len(scored) - 4} safe), " \
           f"1 error rows, 1 without a row" in text, text
    assert "nsfw threshold" in text and "safe threshold" in text and "review band" in text and "95% CI" in text
    assert "at base rate 0.02: expected precision" in text
    out = json.loads(nsfw_scan("calibrate", first, "--labels", labels, "--precision", "0.75", "--missed", "0.25",
                               "--json").stdout)

    # what the command reports, computed here from the rows and the labels
    scores = {r["uri"]: r["score"] for r in scored}
    t = out["nsfw_threshold"]
    flagged = [u for u, s in scores.items() if s >= t]
    assert out["precision"] == sum(u in nsfw for u in flagged) / len(flagged) >= 0.75
    assert out["recall"] == sum(u in nsfw for u in flagged) / 4
    # precision 0.75: from the 2nd highest score 2 of 2 flagged rows are nsfw, from the 3rd 2 of 3;
    # missed 0.25 of 4: one nsfw row may lie below the safe threshold, the 14th highest
    assert t == scored[-2]["score"] and out["safe_threshold"] == scored[-10]["score"]
    assert out["missed"] == sum(scores[u] < out["safe_threshold"] for u in nsfw) / 4 <= 0.25
    assert out["review_share"] == sum(out["safe_threshold"] <= s < t for s in scores.values()) / len(scores)
    assert out["labelled"] == len(scored) and out["error_rows"] == 1 and out["without_row"] == 1

    written = first / "_calibration" / "thresholds.yaml"
    config = yaml.safe_load(written.read_text())
    assert config == {"thresholds": out["thresholds"]}
    with Image.open(first / "_calibration" / "calibration.png") as chart:
        assert chart.format == "PNG" and chart.size == (1200, 500)

    # the thresholds as they are, for a run: every row is decided at them, as Yahoo's exact steps decide
    second = tmp_path / "next-results"
    again = nsfw_scan("run", "--manifest", manifest, "--output", second, "--config", written)
    assert again.returncode == 0, again.stderr
    safe_below, nsfw_from = out["thresholds"]["safe_below"], out["thresholds"]["nsfw_from"]
    for row in pq.read_table(second).to_pylist():
        if row["score"] is None:
            continue
        assert (row["safe_below"], row["nsfw_from"]) == (safe_below, nsfw_from)
        exact = rows[row["uri"]]["score"]  # the first run's: Yahoo's exact steps
        if min(abs(exact - safe_below), abs(exact - nsfw_from)) < 1e-6:
            # a threshold at this row's own score (calibrate puts them at scores): scored again in a
            # batch of another size, float32 moves it by ~1e-8, to either side
            assert abs(row["score"] - exact) < 1e-6
            continue
        assert row["decision"] == ("safe" if exact < safe_below else "nsfw" if exact >= nsfw_from else "review")


def test_labels_that_are_not_labels_are_named(tmp_path):
    (tmp_path / "m.txt").write_text(f"{REAL / corpus_files(REAL)[0]}\n")
    out = tmp_path / "out"
    assert nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", out).returncode == 0
    bad = tmp_path / "labels.csv"
    bad.write_text(f"uri,label\n{REAL / corpus_files(REAL)[0]},maybe\n")
    result = nsfw_scan("calibrate", out, "--labels", bad)
    assert result.returncode == 2 and f"labels {bad} line 2: label 'maybe' is none of nsfw/safe" in result.stderr
    (tmp_path / "nolabel.csv").write_text(f"uri,verdict\n{REAL / corpus_files(REAL)[0]},nsfw\n")
    missing = nsfw_scan("calibrate", out, "--labels", tmp_path / "nolabel.csv")
    assert missing.returncode == 2 and "no 'label' column" in missing.stderr
    out_of_range = nsfw_scan("calibrate", out, "--labels", bad, "--precision", "1.5")
    assert out_of_range.returncode == 2 and "--precision: must be in (0, 1]" in out_of_range.stderr

    # every fix named in calibrate's own flags: it takes no --uri-column and no --manifest
    (tmp_path / "path.csv").write_text(f"path,label\n{REAL / corpus_files(REAL)[0]},nsfw\n")
    (tmp_path / "photo.csv").write_bytes((REAL / corpus_files(REAL)[0]).read_bytes())
    for labels, fix in (("path.csv", "a labels file has a 'uri' and a 'label' column"),
                        ("photo.csv", "not a labels file: give --labels a CSV, TSV, JSON Lines or Parquet file")):
        refused = nsfw_scan("calibrate", out, "--labels", tmp_path / labels)
        assert refused.returncode == 2 and fix in refused.stderr, refused.stderr
        flags = set(re.findall(r"--[a-z][a-z-]*", refused.stderr))
        assert flags <= {"--labels", "--precision", "--missed", "--base-rate", "--json"}, refused.stderr


def test_a_uri_with_an_error_row_and_a_scored_row_counts_once_by_its_scored_row(tmp_path):
    """An error row from a first run and a scored row from a later one (as an interrupted
    ``--rescore-errors`` run leaves them, its salvaged rows beside the error rows it did not get
    to drop): the label counts once, as scored."""
    late = tmp_path / "late.png"
    photos = [str(REAL / f) for f in corpus_files(REAL)][:3]
    manifest, out, other = tmp_path / "m.txt", tmp_path / "out", tmp_path / "other"
    manifest.write_text("\n".join(photos + [str(late)]) + "\n")
    assert nsfw_scan("run", "--manifest", manifest, "--output", out, "--exact").returncode == 0
    late.write_bytes((REAL / "coffee.png").read_bytes())  # the upload arrives later
    (tmp_path / "late.txt").write_text(f"{late}\n")
    assert nsfw_scan("run", "--manifest", tmp_path / "late.txt", "--output", other, "--exact").returncode == 0
    (later,) = other.glob("run-*")
    shutil.move(later, out / later.name)
    assert [r["score"] is None for r in pq.read_table(out).to_pylist() if r["uri"] == str(late)] in ([True, False],
                                                                                                  [False, True])
    labels = tmp_path / "labels.csv"
    labels.write_text("uri,label\n" + "".join(f"{p},safe\n" for p in photos) + f"{late},nsfw\n")
    result = nsfw_scan("calibrate", out, "--labels", labels, "--precision", "0.5", "--missed", "0.5", "--json")
    summary = json.loads(result.stdout)
    assert (summary["labels"], summary["labelled"], summary["nsfw_labelled"]) == (4, 4, 1), summary
    assert (summary["error_rows"], summary["without_row"]) == (0, 0), summary


@pytest.mark.parametrize("name, data, expected", [
    ("bom.csv", b"\xef\xbb\xbfuri,label\r\n/u/a.jpg,nsfw\r\n/u/b.jpg,SAFE\r\n", {"/u/a.jpg": True, "/u/b.jpg": False}),
    ("mac.csv", b"uri,label\r/u/a.jpg,1\r/u/b.jpg,0\r", {"/u/a.jpg": True, "/u/b.jpg": False}),
    ("bom.tsv", b"\xef\xbb\xbfuri\tlabel\r/u/a.jpg\ttrue\r", {"/u/a.jpg": True}),
    ("inner-quote.csv", b'uri,label\n/u/a".jpg,nsfw\n', {'/u/a".jpg': True}),
    ("open-quote.csv", b'uri,label\n/u/a.jpg,"nsfw\n/u/b.jpg,safe\n', "line 2: a quote opens a field that does not close"),
    ("huge-label.csv", b"uri,label\n/u/a.jpg,nsfw\n/u/b.jpg," + b"s" * (200 << 10) + b"\n", "line 3: label 'sss"),
    ("huge-line.csv", b"uri,label\n/u/a.jpg,nsfw\n/u/b.jpg," + b"s" * (2 << 20) + b"\n",
     "line 3: the line is longer than 1048576 characters"),
    ("huge-quoted.csv", b'uri,label\n/u/a.jpg,"' + b"n" * (200 << 10) + b'"\n', "line 2: not readable as CSV"),
    ("control-uri.jsonl", b'{"uri": "/u/a\\u001b[2J\\n.jpg", "label": "nsfw"}\n'
                          b'{"uri": "/u/a\\u001b[2J\\n.jpg", "label": "safe"}\n',
     r"line 2: /u/a\x1b[2J\n.jpg is labelled both nsfw and safe"),
    ("control-label.csv", b"uri,label\n/u/a.jpg,nsfw\x1b[2J\x00\n", r"line 2: label 'nsfw\x1b[2J\x00' is none of nsfw/safe"),
    ("unknown.jsonl", b'{"uri": "/u/a.jpg", "label": {"nested": ["\\u001b[2J"]}}\n', "line 1: label "),
])
def test_a_labels_file_is_untrusted_input(tmp_path, name, data, expected):
    """Byte-order marks and CR-only line ends are read; a stray quote, a huge field, control
    characters or a value that is no label cost one printable error line naming the line."""
    path = tmp_path / name
    path.write_bytes(data)
    if isinstance(expected, dict):
        assert read_labels(str(path)) == expected
        return
    with pytest.raises(ConfigError) as caught:
        read_labels(str(path))
    message = str(caught.value)
    assert message.startswith(f"labels {path} line ") and expected in message, message
    assert message.isprintable() and len(message) < 500, message[:1000]
