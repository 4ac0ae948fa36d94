"""``nsfw-scan report``: counts, chart and review queue from the Parquet results."""

import csv

import pyarrow.parquet as pq
import pytest
from PIL import Image

from support.cli import nsfw_scan
from support.corpus import REAL, corpus_files


def test_report_over_two_runs(tmp_path):
    files = [str(REAL / f) for f in corpus_files(REAL)]
    policy = tmp_path / "policy.yaml"
    policy.write_text("thresholds: {safe_below: 0.001, nsfw_from: 0.02}\n")
    out = tmp_path / "out"
    (tmp_path / "a.csv").write_text("uri,upload\n" + "".join(f"{u},a{i}\n" for i, u in enumerate(files[:3])))
    (tmp_path / "b.csv").write_text("uri,upload\n" + "".join(f"{u},b{i}\n" for i, u in enumerate(files[3:]))
                                    + f"{tmp_path / 'gone.jpg'},b99\n")
    for manifest in ("a.csv", "b.csv"):
        result = nsfw_scan("run", "--manifest", tmp_path / manifest, "--output", out, "--config", policy)
        assert result.returncode == 0, result.stderr
    assert f"nsfw-scan report {out}" in result.stdout

    result = nsfw_scan("report", out, "--config", policy)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)  # the report's files do not get in the way of reading the results
    rows = table.to_pylist()
    counts = {d: sum(r["decision"] == d for r in rows) for d in ("safe", "review", "nsfw", "error")}
    assert counts["review"] > 0 and counts["nsfw"] > 0 and counts["error"] == 1
    first = result.stdout.splitlines()[0]
    assert first == (f"rows {len(rows)}: safe {counts['safe']}, review {counts['review']}, "
                     f"nsfw {counts['nsfw']}, error {counts['error']}")
    assert "errors: not_found 1" in result.stdout

    with open(out / "_report" / "review_queue.csv", newline="") as f:
        queue = list(csv.DictReader(f))
    assert len(queue) == counts["review"] + counts["nsfw"]
    scores = [float(r["score"]) for r in queue]
    assert scores == sorted(scores, reverse=True)
    assert {r["decision"] for r in queue} == {"review", "nsfw"} and all(r["upload"] for r in queue)
    with open(out / "_report" / "errors.csv", newline="") as f:
        failed = list(csv.DictReader(f))
    assert [(r["uri"], r["upload"], r["error"].split(":")[0]) for r in failed] == [(str(tmp_path / "gone.jpg"), "b99", "not_found")]
    assert "errors (1 rows, by kind)" in result.stdout

    with Image.open(out / "_report" / "report.png") as chart:
        assert chart.format == "PNG" and chart.size == (1200, 540)
        pixels = chart.convert("RGB")
        colours = {c for _, c in pixels.getcolors(1 << 20)}
        # bars in each decision's colour (matplotlib's drawing of pipeline.report.COLOURS)
        from nsfw_scan.pipeline.report import COLOURS
        for decision in ("safe", "review", "nsfw", "error"):
            rgb = tuple(int(COLOURS[decision][i:i + 2], 16) for i in (1, 3, 5))
            assert rgb in colours, decision


def test_report_reads_results_of_an_older_version(tmp_path):
    """A folder whose first run an older nsfw-scan wrote (no error_kind, source or duplicates
    columns) still reports: the missing columns read as empty, error kinds from the messages."""
    files = [str(REAL / f) for f in corpus_files(REAL)]
    out = tmp_path / "out"
    (tmp_path / "a.txt").write_text(f"{files[0]}\n{tmp_path / 'gone.jpg'}\n")
    (tmp_path / "b.txt").write_text(f"{files[1]}\n{tmp_path / 'gone-too.jpg'}\n")
    assert nsfw_scan("run", "--manifest", tmp_path / "a.txt", "--output", out).returncode == 0
    (older,) = out.glob("run-*/part-*.parquet")
    table = pq.read_table(older)
    pq.write_table(table.drop_columns(["error_kind", "source_manifest", "source_line", "duplicates"]), older)
    assert nsfw_scan("run", "--manifest", tmp_path / "b.txt", "--output", out).returncode == 0

    result = nsfw_scan("report", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "rows 4: safe 2, review 0, nsfw 0, error 2"
    assert "errors: not_found 2" in result.stdout
    with open(out / "_report" / "errors.csv", newline="") as f:
        failed = list(csv.DictReader(f))
    assert sorted((r["uri"], r["error_kind"], r["source_line"]) for r in failed) == [
        (str(tmp_path / "gone-too.jpg"), "not_found", "2"), (str(tmp_path / "gone.jpg"), "not_found", "")]


FORMULAS = ["=HYPERLINK(\"http://attacker.example/\",\"open me\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1"]


def test_formula_looking_cells_are_text_in_both_report_csvs(tmp_path):
    files = [str(REAL / f) for f in corpus_files(REAL)][:len(FORMULAS) - 1]
    policy = tmp_path / "policy.yaml"
    policy.write_text("thresholds: {safe_below: 0.0, nsfw_from: 0.5}\n")  # every scored image is in the queue
    manifest, out = tmp_path / "m.csv", tmp_path / "out"
    uris = files + [str(tmp_path / "gone.jpg")]
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([["uri", "upload"], *zip(uris, FORMULAS), [str(tmp_path / "missing.jpg"), "plain"]])
    assert nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", policy).returncode == 0
    result = nsfw_scan("report", out, "--config", policy)
    assert result.returncode == 0, result.stderr
    cells = {}
    for name in ("review_queue.csv", "errors.csv"):
        with open(out / "_report" / name, newline="") as f:
            for row in csv.DictReader(f):
                cells[row["uri"]] = row["upload"]
                assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r") for v in row.values()), row
    assert cells == {**{uri: "'" + text for uri, text in zip(uris, FORMULAS)}, str(tmp_path / "missing.jpg"): "plain"}


def test_report_into_a_folder_it_cannot_write_is_one_error_line(tmp_path):
    import os
    import subprocess

    files = [str(REAL / f) for f in corpus_files(REAL)][:1]
    (tmp_path / "m.txt").write_text(f"{files[0]}\n")
    out, shelf = tmp_path / "out", tmp_path / "read-only"
    assert nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", out).returncode == 0
    shelf.mkdir()
    root = os.geteuid() == 0  # root writes anywhere, except into an immutable folder
    subprocess.run(["chattr", "+i", shelf], check=True) if root else shelf.chmod(0o555)
    try:
        result = nsfw_scan("report", out, "--report-dir", shelf / "report")
    finally:
        subprocess.run(["chattr", "-i", shelf], check=True) if root else shelf.chmod(0o755)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"nsfw-scan: error: {shelf / 'report'}: cannot write the report there") and \
        "--report-dir" in line and "Traceback" not in result.stderr, line


PAIRS = {f"0.{i:02d}/0.{99 - i}": 100 * i + 7 for i in range(1, 10)}  # rows decided at nine pairs of thresholds


@pytest.mark.parametrize("decided_at", [{"0.2/0.8": 6820}, PAIRS], ids=["one pair", "nine pairs"])
def test_the_chart_legend_covers_no_bar(tmp_path, decided_at):
    import datetime

    from nsfw_scan.model.decision import Thresholds
    from nsfw_scan.pipeline.report import figure

    histograms = {"safe": [900, 300, 100, 40] + [0] * 16, "review": [0] * 4 + [20] * 12 + [0] * 4,
                  "nsfw": [0] * 16 + [10, 30, 200, 5000]}  # the tallest bar is the last, 0.95-1.0
    report = {"decisions": {"safe": 1340, "review": 240, "nsfw": 5240, "error": 7}, "errors": {"not_found": 7},
              "histograms": histograms, "histogram": [sum(n) for n in zip(*histograms.values())], "rows": 6827,
              "directory": str(tmp_path), "time_range": (datetime.datetime(2026, 12, 1, 20), datetime.datetime(2026, 12, 1, 21))}
    pairs = [Thresholds(*map(float, pair.split("/"))) for pair in decided_at]
    chart = figure({**report, "thresholds": pairs, "decided_at": decided_at})
    chart.draw_without_rendering()  # lays the figure out
    renderer = chart.canvas.get_renderer()
    scores_axis = chart.axes[0]
    legend = scores_axis.get_legend().get_window_extent(renderer)
    from matplotlib.transforms import Bbox

    # what is seen of each bar (those stacked on 0 reach below the log axis)
    bars = [Bbox.intersection(patch.get_window_extent(renderer), scores_axis.bbox)
            for patch in scores_axis.patches if patch.get_height() > 0]
    assert len(bars) == 20 and all(bars) and not [bar for bar in bars if bar.overlaps(legend)]
    whole = chart.bbox
    assert whole.x0 <= legend.x0 and legend.x1 <= whole.x1 and whole.y0 <= legend.y0  # on the chart


def test_few_review_rows_in_a_bin_of_many_safe_ones_stay_visible_and_errors_have_a_swatch(tmp_path):
    import datetime

    from matplotlib.colors import to_hex

    from nsfw_scan.model.decision import Thresholds
    from nsfw_scan.pipeline.report import COLOURS, figure

    # thresholds inside a bin (0.12): bin 0.10-0.15 holds 10,000 safe rows and 10 review ones
    histograms = {"safe": [50_000, 20_000, 10_000] + [0] * 17, "review": [0, 0, 10] + [3] * 13 + [0] * 4,
                  "nsfw": [0] * 16 + [1, 2, 3, 4]}
    report = {"decisions": {"safe": 80_000, "review": 49, "nsfw": 10, "error": 3}, "errors": {"timeout": 3},
              "histograms": histograms, "histogram": [sum(n) for n in zip(*histograms.values())], "rows": 80_062,
              "directory": str(tmp_path), "time_range": (datetime.datetime(2026, 12, 1, 20), datetime.datetime(2026, 12, 1, 21))}
    chart = figure({**report, "thresholds": [Thresholds(0.12, 0.8)], "decided_at": {"0.12/0.8": 80_059}})
    chart.draw_without_rendering()
    renderer = chart.canvas.get_renderer()
    scores_axis = chart.axes[0]
    bars = {(to_hex(p.get_facecolor()), round(p.get_x(), 4)): p.get_window_extent(renderer)
            for p in scores_axis.patches if p.get_height() > 0}
    review = bars[(COLOURS["review"], round(0.10 + 1 / 40, 4))]  # the bin's right half
    safe = bars[(COLOURS["safe"], 0.10)]
    assert review.height > 20 and safe.height > review.height  # tens of pixels on the log axis
    assert not review.overlaps(safe) or review.x0 >= safe.x1 - 1e-6  # beside it, not on or under it
    swatches = {to_hex(h.get_facecolor()): h.get_label() for h in scores_axis.get_legend().legend_handles
                if hasattr(h, "get_facecolor")}
    assert swatches[COLOURS["error"]].startswith("error: 3")


def test_export_writes_every_row_of_every_run_as_one_spreadsheet_safe_csv(tmp_path):
    files = [str(REAL / f) for f in corpus_files(REAL)]
    out = tmp_path / "out"
    (tmp_path / "a.csv").write_text("uri,upload\n" + f"{files[0]},=1+1\n{tmp_path / 'gone.jpg'},a2\n")
    (tmp_path / "b.csv").write_text("uri,team\n" + f"{files[1]},@trust\n")  # another manifest column
    for manifest in ("a.csv", "b.csv"):
        assert nsfw_scan("run", "--manifest", tmp_path / manifest, "--output", out).returncode == 0
    result = nsfw_scan("export", out, "--csv", tmp_path / "all.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"3 rows written to {tmp_path / 'all.csv'}"
    with open(tmp_path / "all.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    parquet = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert sorted(r["uri"] for r in rows) == sorted(parquet)
    by_uri = {r["uri"]: r for r in rows}
    assert by_uri[files[0]]["upload"] == "'=1+1" and by_uri[files[0]]["team"] == ""
    assert by_uri[files[1]]["team"] == "'@trust" and by_uri[files[1]]["upload"] == ""
    assert by_uri[str(tmp_path / "gone.jpg")]["error_kind"] == "not_found"
    for uri, row in by_uri.items():
        assert row["decision"] == parquet[uri]["decision"]
        if parquet[uri]["score"] is not None:
            assert abs(float(row["score"]) - parquet[uri]["score"]) < 1e-6

    missing = nsfw_scan("export", tmp_path / "nothing-here", "--csv", tmp_path / "x.csv")
    assert missing.returncode == 2 and "no results found" in missing.stderr


@pytest.mark.slow
def test_a_second_demo_leaves_no_report_of_the_first(tmp_path):
    demo = tmp_path / "demo"
    first = nsfw_scan("demo", demo)
    assert first.returncode == 0, first.stderr
    assert nsfw_scan("report", demo / "results").returncode == 0
    assert (demo / "results" / "_report" / "report.png").exists()
    second = nsfw_scan("demo", demo)  # --force: its run replaces the first, and the first's report goes
    assert second.returncode == 0, second.stderr
    assert not (demo / "results" / "_report").exists()
    assert len(list((demo / "results").glob("run-*"))) == 1
