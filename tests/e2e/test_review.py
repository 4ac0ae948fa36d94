"""``nsfw-scan review`` on a real run over committed and generated pictures: the page's items and
thumbnails, text from uploads and hash lists shown as text, and (in headless Chromium driven by
Selenium) a reviewer's pass through the queue whose labels file drives ``calibrate`` and
``hashes`` as it is."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from nsfw_scan.pipeline.review import ITEMS_MARK
from support.cli import nsfw_scan
from support.clips import FLAGGED, FLAGGED_IN_SCENE, flagged
from support.corpus import HOSTILE, REAL, corpus_files
from support.images import encoded, rgb, with_inset
from support.pages import review_items

# a file name and a hash-list label that would run script if the page took them for markup
HOSTILE_NAME = 'coffee "<script>window.pwned=1<img src=x onerror=window.pwned=2>.png'
HOSTILE_LABEL = "<img src=x onerror=window.pwned=3> takedown"
INSET = (440, 290, 760, 610)  # where inset.jpg shows flagged content, in its 1200 x 900 pixels
THRESHOLDS = {"safe_below": 0.01, "nsfw_from": 0.8}  # the committed photos 0.013 and 0.03 fall in review


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A run over the committed corpus, the generated flagged pictures and a copy of a photo under
    a hostile name, with a hostile label matched to one row; then its review page."""
    folder = tmp_path_factory.mktemp("review")
    uploads = folder / "uploads"
    uploads.mkdir()
    hostile = uploads / HOSTILE_NAME
    shutil.copy(REAL / "coffee.png", hostile)
    inset = uploads / "inset.jpg"  # flagged only in a region
    inset.write_bytes(encoded(with_inset(rgb("coffee.png", (1200, 900)), flagged(FLAGGED_IN_SCENE), INSET), "JPEG"))
    uris = ([str(REAL / f) for f in corpus_files(REAL)] + [str(HOSTILE / f) for f in corpus_files(HOSTILE)]
            + [str(FLAGGED), str(inset), str(hostile)])
    manifest, out, config = folder / "uploads.txt", folder / "out", folder / "thresholds.yaml"
    manifest.write_text("\n".join(uris) + "\n")
    config.write_text(yaml.safe_dump({"thresholds": THRESHOLDS}))
    done = nsfw_scan("run", "--manifest", manifest, "--output", out, "--config", config)
    assert done.returncode in (0, 1), done.stderr
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    listed = folder / "known.csv"
    listed.write_text(f"pdq,label\n{rows[str(REAL / 'grace_hopper.jpg')]['pdq']},\"{HOSTILE_LABEL}\"\n")
    assert nsfw_scan("match", out, "--match-list", listed).returncode == 0
    review = nsfw_scan("review", out, "--config", config, "--audit-min", "3")
    assert review.returncode == 0, review.stderr
    return {"folder": folder, "out": out, "config": config, "rows": rows, "hostile": str(hostile), "inset": str(inset),
            "stdout": review.stdout, "page": out / "_review" / "index.html"}


def items_of(page) -> list[dict]:
    return review_items(page.read_text(encoding="utf-8"))


def test_the_page_lists_the_band_then_an_audit_sample_then_errors_with_thumbnails(scanned):
    rows, items = scanned["rows"], items_of(scanned["page"])
    assert ITEMS_MARK not in scanned["page"].read_text()
    groups = [item["group"] for item in items]
    assert groups == sorted(groups, key=["review", "nsfw", "safe", "error"].index), groups
    band = {uri for uri, r in rows.items() if r["decision"] == "review"}
    assert band >= {str(REAL / "astronaut.png"), str(REAL / "coffee.png"), scanned["hostile"]}
    assert {item["uri"] for item in items if item["group"] == "review"} == band
    review_scores = [item["score"] for item in items if item["group"] == "review"]
    assert review_scores == sorted(review_scores, reverse=True)
    nsfw = {uri for uri, r in rows.items() if r["decision"] == "nsfw"}
    assert {str(FLAGGED), scanned["inset"]} <= nsfw
    assert {item["uri"] for item in items if item["group"] == "nsfw"} == nsfw  # fewer than --audit-min: all
    safe = [item for item in items if item["group"] == "safe"]
    assert len(safe) == 3 and all(rows[item["uri"]]["decision"] == "safe" for item in safe)
    errors = [item for item in items if item["group"] == "error"]
    assert errors and {item["error_kind"] for item in errors} <= {"truncated", "undecodable", "unsupported_format"}
    assert all(rows[item["uri"]]["decision"] == "error" for item in errors)
    # a thumbnail of every scored item, a small JPEG made here; the region's outlined on the whole picture
    for item in items:
        if item["group"] != "error":
            thumb = Image.open(scanned["page"].parent / item["thumb"])
            assert thumb.format == "JPEG" and max(thumb.size) <= 256, item["uri"]
    region = next(item for item in items if item["uri"] == scanned["inset"])
    assert region["view"].startswith("region ") and "whole" in region
    whole = Image.open(scanned["page"].parent / region["whole"]).convert("RGB")
    assert whole.size == (256, 192)
    left, top, right, bottom = (int(v) * 256 // 1200 for v in region["view"].split()[1].split(","))
    assert left < INSET[2] * 256 // 1200 and INSET[0] * 256 // 1200 < right
    r, g, b = whole.getpixel((left + 1, (top + bottom) // 2))
    assert r > 200 and g < 80 and b > 150  # the outline's colour
    assert any("thumb_error" in item for item in errors)  # a file that shows nothing says why
    assert "review page:" in scanned["stdout"] and "0 reused" in scanned["stdout"]


def test_a_second_page_reuses_the_thumbnails(scanned):
    again = nsfw_scan("review", scanned["out"], "--config", scanned["config"], "--audit-min", "3", "--order", "uri")
    assert again.returncode == 0, again.stderr
    assert re.search(r"thumbnails: 0 made, [1-9]\d* reused", again.stdout), again.stdout
    review = [item["uri"] for item in items_of(scanned["page"]) if item["group"] == "review"]
    assert review == sorted(review)


def test_text_from_uploads_and_lists_is_never_markup(scanned):
    html = scanned["page"].read_text(encoding="utf-8")
    assert "<script>window" not in html and "<img src=x" not in html
    items = items_of(scanned["page"])
    assert any(item["uri"] == scanned["hostile"] for item in items)
    assert any(item["match"] == HOSTILE_LABEL for item in items)


def _browser():
    """Headless Chromium from the machine's packages driven by its chromedriver, or a skip (a
    failure in CI) naming what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = "selenium is not installed (pip install -e '.[test]')"
    else:
        reason = None if chromium and driver else "no chromium and chromedriver on the PATH (run tests/install-browser.sh)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    return chromium, driver


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _press(driver, keys: str) -> None:
    from selenium.webdriver.common.by import By

    body = driver.find_element(By.TAG_NAME, "body")
    for key in keys:
        body.send_keys(key)


def _filter(driver) -> str:
    return driver.execute_script("const img = document.querySelector('#pictures img');"
                                 "return img ? getComputedStyle(img).filter : null;")


def _text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent;")


def test_a_reviewer_labels_the_queue_by_keyboard_and_the_labels_drive_calibrate_and_hashes(scanned, browser, tmp_path):
    items = items_of(scanned["page"])
    browser.get(scanned["page"].as_uri())
    assert _text(browser, "position") == f"1 of {len(items)}"
    # blurred and grey until asked, clear while shown, blurred again on the next item
    assert "blur(24px)" in _filter(browser) and "grayscale(1)" in _filter(browser)
    _press(browser, " ")
    assert _filter(browser) == "none"
    browser.save_screenshot(str(tmp_path / "review-shown.png"))
    _press(browser, " ")
    assert "blur" in _filter(browser)

    # the hostile name and label are on the page as text, and nothing of them ran
    hostile = next(i for i, item in enumerate(items) if item["uri"] == scanned["hostile"])
    matched = next(i for i, item in enumerate(items) if item["match"] == HOSTILE_LABEL)
    for index, text in ((hostile, scanned["hostile"]), (matched, HOSTILE_LABEL)):
        browser.execute_script(f"go({index});")
        assert text in _text(browser, "facts")
    assert browser.execute_script("return window.pwned === undefined && document.querySelectorAll("
                                  "'img[src=x], script:not(:first-of-type)').length === 0;")

    # every item labelled by key: nsfw at 0.5 or more, else safe; one skipped, one undone and redone
    browser.execute_script("go(0);")
    expected = {}
    for index, item in enumerate(items):
        if index == 1:
            _press(browser, "x")  # skip: no label in the file
            continue
        key = "n" if item["score"] is not None and item["score"] >= 0.5 else "s"
        if index == 2:
            _press(browser, "n" if key == "s" else "s")
            _press(browser, "u")  # undo: back on this item, unlabelled
            assert _text(browser, "state") == "not labelled"
        _press(browser, key)
        expected[item["uri"]] = "nsfw" if key == "n" else "safe"
    done = f"{len(items)} of {len(items)} done"
    assert _text(browser, "progress").startswith(done)
    browser.refresh()  # the labels are kept in the browser
    assert _text(browser, "progress").startswith(done)
    assert _text(browser, "progress").endswith("skip 1)")
    browser.save_screenshot(str(tmp_path / "review.png"))

    browser.execute_script("document.getElementById('download').click();")
    labels = browser.downloads / "labels.csv"
    deadline = time.monotonic() + 30
    while not labels.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    with open(labels, newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert {row["uri"]: row["label"] for row in written} == expected
    assert set(written[0]) == {"uri", "label", "reviewed_at", "score", "decision", "safe_below", "nsfw_from"}

    # the file as downloaded drives calibrate and hashes
    calibrated = nsfw_scan("calibrate", scanned["out"], "--labels", labels, "--json")
    assert calibrated.returncode in (0, 1), calibrated.stderr
    summary = json.loads(calibrated.stdout)
    errors = sum(scanned["rows"][uri]["score"] is None for uri in expected)
    assert (summary["labels"], summary["labelled"], summary["error_rows"]) == (len(expected), len(expected) - errors, errors)
    assert summary["nsfw_labelled"] == sum(label == "nsfw" for label in expected.values()) == 2, summary
    assert summary["written"]["thresholds"].endswith("thresholds.yaml")
    listed = nsfw_scan("hashes", scanned["out"], "--labels", labels)
    assert listed.returncode == 0, listed.stderr
    hashed = {line["uri"] for line in csv.DictReader(io.StringIO(listed.stdout))}
    nsfw_hashed = {uri for uri, label in expected.items() if label == "nsfw" and scanned["rows"][uri]["pdq"]}
    assert hashed == nsfw_hashed and hashed


def test_thumbnails_are_read_as_the_job_reads_refusing_private_addresses(tmp_path):
    from nsfw_scan.pipeline.config import Config
    from nsfw_scan.pipeline.review import Thumbnailer

    maker = Thumbnailer(str(tmp_path), Config())
    for uri in ("http://127.0.0.1:1/a.jpg", "http://169.254.169.254/latest/meta-data/x.png"):
        assert maker.make(uri, "yahoo")["thumb_error"].startswith("blocked_address"), uri
    assert maker.make(str(tmp_path / "gone.jpg"), "yahoo")["thumb_error"].startswith("not_found")
    assert maker.make(str(REAL / "coins.png"), "yahoo")["thumb"].startswith("thumbs/")
    assert list(tmp_path.iterdir()) == [tmp_path / (maker.make(str(REAL / "coins.png"), "yahoo")["thumb"][7:])]


def test_one_item_per_uri_its_newest_row_and_rows_without_a_uri_left_out(tmp_path):
    import datetime

    import pyarrow as pa

    from nsfw_scan.pipeline.review import Choice, choose
    from nsfw_scan.storage.schema import output_schema

    def run_folder(name, rows):
        folder = tmp_path / "out" / name
        folder.mkdir(parents=True)
        schema = output_schema({})
        table = pa.Table.from_pylist([{f.name: row.get(f.name) for f in schema} for row in rows], schema=schema)
        pq.write_table(table, folder / "part-00000-of-00001.parquet")

    then = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    later = then + datetime.timedelta(days=1)
    run_folder("run-1", [{"uri": "a.jpg", "score": 0.5, "decision": "review", "scored_at": then},
                         {"uri": "b.jpg", "score": 0.9, "decision": "nsfw", "scored_at": then}])
    run_folder("run-2", [{"uri": "a.jpg", "score": 0.1, "decision": "safe", "scored_at": later},
                         {"uri": None, "decision": "error", "error_kind": "bad_manifest_line", "scored_at": later}])
    groups = dict(choose(str(tmp_path / "out"), Choice()))
    assert groups["review"].num_rows == 0  # a.jpg's newest row is safe
    assert groups["safe"].column("uri").to_pylist() == ["a.jpg"] and groups["nsfw"].column("uri").to_pylist() == ["b.jpg"]
    assert groups["error"].num_rows == 0
