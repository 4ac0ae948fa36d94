"""Thresholds that travel with the results: each row and summary records the thresholds its
decision was made at; a run at other thresholds than the folder's rows says so and how to
re-decide them; ``nsfw-scan redecide`` decides every row again at new thresholds, scoring again
by the exact steps only the first-pass rows near them; ``report`` counts and draws with the
thresholds the rows were decided at."""

import json
import shutil

import pyarrow.parquet as pq

from nsfw_scan.pipeline.config import Cascade
from support.cli import nsfw_scan
from support.corpus import HOSTILE, REAL, corpus_files

MARGIN = Cascade().margin  # configs/default.yaml's cascade.margin


def rows_of(out) -> dict[str, dict]:
    return {r["uri"]: r for r in pq.read_table(out).to_pylist()}


def test_run_new_thresholds_redecide_report(tmp_path):
    photos = [str(REAL / f) for f in corpus_files(REAL)]
    first, second = tmp_path / "first.txt", tmp_path / "all.txt"
    first.write_text("\n".join(photos[:4] + [str(tmp_path / "gone.jpg")]) + "\n")
    uris = photos + [str(HOSTILE / f) for f in corpus_files(HOSTILE)[:12]] + [str(tmp_path / "gone.jpg")]
    second.write_text("\n".join(uris) + "\n")
    out = tmp_path / "out"

    # a run records its thresholds, on every scored row and in its summary
    done = nsfw_scan("run", "--manifest", first, "--output", out)
    assert done.returncode == 0, done.stderr
    assert "thresholds     safe below 0.2, nsfw from 0.8\n" in done.stdout
    assert json.loads((out / "_SUMMARY.json").read_text())["thresholds"] == {"safe_below": 0.2, "nsfw_from": 0.8}
    rows = rows_of(out)
    assert {(r["safe_below"], r["nsfw_from"]) for r in rows.values() if r["score"] is not None} == {(0.2, 0.8)}
    assert rows[str(tmp_path / "gone.jpg")]["safe_below"] is None
    report = nsfw_scan("report", out)
    assert "thresholds: safe below 0.2, nsfw from 0.8" in report.stdout, report.stdout

    # new thresholds, as a calibration would give them: the safe one within the margin of a
    # first-pass row's score, so re-deciding has to score that row again exactly
    cheap = sorted((r for r in rows.values() if r["exact"] is False), key=lambda r: r["score"])
    assert cheap, "the first pass kept some rows"
    near = cheap[-1]
    safe_below = round(near["score"] + MARGIN / 5, 6)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"thresholds:\n  safe_below: {safe_below}\n  nsfw_from: 0.9\n")

    # a run at the new thresholds decides its new rows at them and names the earlier ones
    grown = nsfw_scan("run", "--manifest", second, "--output", out, "--config", policy)
    assert grown.returncode == 0, grown.stderr
    scored_before = sum(r["score"] is not None for r in rows.values())
    assert (f"{scored_before} earlier rows in the folder were decided at others (0.2/0.8: {scored_before})"
            in grown.stdout), grown.stdout
    assert f"to decide them at these: nsfw-scan redecide {out} --config {policy}\n" in grown.stdout
    mixed = nsfw_scan("report", out, "--config", policy)
    assert mixed.returncode == 0 and "rows decided at different thresholds: " in mixed.stdout, mixed.stdout
    assert "0.2/0.8: " in mixed.stdout and f"{safe_below:g}/0.9: " in mixed.stdout

    # redecide: every row at the new thresholds, decisions those of Yahoo's exact steps
    redecided = nsfw_scan("redecide", out, "--config", policy)
    assert redecided.returncode == 0, redecided.stderr
    assert "scored again by the exact steps" in redecided.stdout, redecided.stdout
    rows = rows_of(out)
    assert {(r["safe_below"], r["nsfw_from"]) for r in rows.values() if r["score"] is not None} == {(safe_below, 0.9)}
    assert rows[near["uri"]]["exact"] is True and rows[near["uri"]]["loader"] == "yahoo"
    exact_out = tmp_path / "exact"
    exact = nsfw_scan("run", "--manifest", second, "--output", exact_out, "--config", policy, "--exact")
    assert exact.returncode == 0, exact.stderr
    reference = rows_of(exact_out)
    assert set(rows) == set(reference)
    assert {u: r["decision"] for u, r in rows.items()} == {u: r["decision"] for u, r in reference.items()}
    assert abs(rows[near["uri"]]["score"] - reference[near["uri"]]["score"]) < 1e-6
    for column in ("source_manifest", "source_line", "duplicates", "sha256"):
        assert rows[near["uri"]][column] == near[column], column

    report = nsfw_scan("report", out)
    assert f"thresholds: safe below {safe_below:g}, nsfw from 0.9" in report.stdout, report.stdout
    counts = {d: sum(r["decision"] == d for r in rows.values()) for d in ("safe", "review", "nsfw", "error")}
    assert report.stdout.splitlines()[0] == (f"rows {len(rows)}: safe {counts['safe']}, review {counts['review']}, "
                                             f"nsfw {counts['nsfw']}, error {counts['error']}")

    again = nsfw_scan("redecide", out, "--config", policy)
    assert again.returncode == 0 and "0 from their stored scores, 0 scored again" in again.stdout, again.stdout
    assert "0 result files rewritten" in again.stdout


def test_redecide_scores_with_the_runs_own_settings_and_keeps_a_changed_files_row(tmp_path):
    """A ``thresholds.yaml`` holds thresholds only: the rows scored again keep their run's hash
    list (and views, limits, weights). A file that has changed since its run (another sha256)
    keeps its row, true of the content it was scored on, and the command says so."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    photos = corpus_files(REAL)
    for name in photos:
        shutil.copy(REAL / name, uploads / name)
        shutil.copy(REAL / name, uploads / f"again-{name}")
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"{p}\n" for p in sorted(uploads.iterdir())))
    plain, out = tmp_path / "plain", tmp_path / "out"
    assert nsfw_scan("run", "--manifest", manifest, "--output", plain).returncode == 0
    known = tmp_path / "known.csv"
    # Yahoo's view's hashes, as the run below (--views yahoo) makes them
    known.write_text("pdq,label\n" + "".join(f"{r['yahoo_pdq']},known\n" for r in rows_of(plain).values()
                                              if r["yahoo_pdq"]))
    done = nsfw_scan("run", "--manifest", manifest, "--output", out, "--match-list", known, "--views", "yahoo")
    assert done.returncode == 0, done.stderr
    before = rows_of(out)
    cheap = sorted((r for r in before.values() if r["exact"] is False and "again-" not in r["uri"]),
                   key=lambda r: r["score"])
    near = cheap[-1]
    twin = str(uploads / f"again-{near['uri'].rsplit('/', 1)[1]}")
    assert before[twin]["score"] == near["score"] and before[twin]["exact"] is False
    assert near["match"] == "known" and near["match_checked"] is True
    other = next(name for name in photos if name != near["uri"].rsplit("/", 1)[1])
    (uploads / twin.rsplit("/", 1)[1]).write_bytes((REAL / other).read_bytes())  # a new file at the same URI

    safe_below = round(near["score"] + MARGIN / 5, 6)
    policy = tmp_path / "thresholds.yaml"  # as nsfw-scan calibrate writes it: thresholds only
    policy.write_text(f"thresholds:\n  safe_below: {safe_below}\n  nsfw_from: 0.9\n")
    legacy = tmp_path / "legacy"  # as a version that recorded no settings wrote it
    shutil.copytree(out, legacy)
    for part in legacy.glob("run-*/part-*.parquet"):
        pq.write_table(pq.read_table(part).replace_schema_metadata(None), part)
    redecided = nsfw_scan("redecide", out, "--config", policy)
    assert redecided.returncode == 0, redecided.stderr
    assert "1 files have changed since their run (another sha256)" in redecided.stdout, redecided.stdout
    older = nsfw_scan("redecide", legacy, "--config", policy)  # scored again with the policy's settings, as before
    assert older.returncode == 0 and "its run recorded no settings" in older.stderr, older.stderr
    assert rows_of(legacy)[near["uri"]]["exact"] is True
    after = rows_of(out)
    again = after[near["uri"]]
    assert again["exact"] is True and again["loader"] == "yahoo" and again["safe_below"] == safe_below
    assert (again["match"], again["match_checked"], again["sha256"]) == ("known", True, near["sha256"])
    assert after[twin] == before[twin]  # the row of the content it was scored on, at its own thresholds
