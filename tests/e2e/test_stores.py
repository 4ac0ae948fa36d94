"""Manifests, images and results in a bucket: S3 (moto's server) and GCS (gcp-storage-emulator),
both on 127.0.0.1, reached over the network by the job's own processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nsfw_scan.pipeline.run import run
from support.cli import nsfw_scan
from support.pages import review_items
from support.stores import counts, image_bytes, one_row_per_uri


@pytest.mark.slow
def test_runs_in_a_bucket_keep_one_row_per_uri_and_report(store, tmp_path):
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(5)]
    late = store.uri("img/late.png")  # listed before it is uploaded
    store.put("manifests/m.txt", "\n".join(images[:3] + [late]).encode())
    out = store.uri("out")
    policy = tmp_path / "policy.yaml"  # every score is "review" or "nsfw": all scored rows go to the queue
    policy.write_text("thresholds: {safe_below: 0.0000001, nsfw_from: 0.5}\n")

    def job(*flags):  # the manifest by a glob: listed in the bucket
        return run(["--manifest", store.uri("manifests/*.txt"), "--output", out, "--batch-size", "4",
                    "--config", str(policy), *store.flags, *flags])

    first = job()
    assert counts(first) == (4, 4, 3) and first["errors_by_kind"] == {"not_found": 1}
    again = job()
    assert counts(again) == (4, 0, 0) and again["already_done"] == 4
    assert len(one_row_per_uri(store, "out")) == 4

    store.put("manifests/m.txt", "\n".join(images + [late]).encode())  # two new uploads
    grown = job()
    assert counts(grown) == (6, 2, 2) and grown["already_done"] == 4

    store.put("img/late.png", image_bytes(9))
    rescored = job("--rescore-errors")
    assert counts(rescored) == (6, 1, 1)
    found = one_row_per_uri(store, "out")
    assert set(found) == set(images + [late]) and found[late]["error"] is None

    forced = job("--force")
    assert counts(forced) == (6, 6, 6)
    assert {k.split("/")[1] for k in store.keys("out/run-")} == {forced["results"].rsplit("/", 1)[-1]}
    assert len(one_row_per_uri(store, "out")) == 6
    assert not store.keys("out/_LOCK")  # released

    # score and report in processes of their own, told about the store by the same flags
    scored = nsfw_scan("score", images[0], store.uri("gone.png"), *store.flags)
    assert scored.returncode == 1, scored.stderr
    lines = [json.loads(line) for line in scored.stdout.splitlines()]
    assert lines[0]["error"] is None and abs(lines[0]["score"] - found[images[0]]["score"]) < 1e-5
    assert lines[1]["error"].startswith("not_found")

    report = nsfw_scan("report", out, "--config", policy, *store.flags)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].startswith("rows 6: safe 0, ") and report.stdout.splitlines()[0].endswith(" error 0")
    queue = store.get("out/_report/review_queue.csv").decode().splitlines()
    assert queue[0].startswith('"uri","score","decision"') and len(queue) == 1 + 6
    assert store.get("out/_report/report.png").startswith(b"\x89PNG")
    elsewhere = nsfw_scan("report", out, "--report-dir", tmp_path / "rep", *store.flags)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (tmp_path / "rep" / "review_queue.csv").is_file() and (tmp_path / "rep" / "report.png").is_file()

    # the review page in the bucket, its thumbnails made from the uploads in it
    review = nsfw_scan("review", out, "--config", policy, *store.flags)
    assert review.returncode == 0, review.stderr
    items = review_items(store.get("out/_review/index.html").decode())
    assert {item["uri"] for item in items} == set(images + [late]) and not any("thumb_error" in i for i in items)
    thumbs = store.keys("out/_review/thumbs/")
    assert len([key for key in thumbs if not key.endswith("-whole.jpg")]) == 6  # a region's whole picture beside
    assert all(store.get(key).startswith(b"\xff\xd8") for key in thumbs)  # JPEGs


def test_store_errors_stop_the_run(store, tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_bytes(b"a.png\n")
    missing = f"{store.scheme}://no-such-bucket/out"
    result = nsfw_scan("run", "--manifest", manifest, "--output", missing, *store.flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{missing}/_LOCK: cannot take the output folder's lock: " in result.stderr

    from nsfw_scan.storage.options import StorageOptions
    from nsfw_scan.storage.results_folder import OutputDirError, result_files

    StorageOptions.from_beam_args(store.flags).apply()
    assert result_files(store.uri("nothing-yet")) == []
    if store.scheme == "gs":  # (Beam's S3 listing reads a missing bucket as an empty one)
        with pytest.raises(OutputDirError, match=f"^cannot list {missing}/run-.*NotFound"):
            result_files(missing)


@pytest.mark.slow
def test_one_writer_at_a_time_and_a_killed_run_resumes(store, tmp_path):
    images = [store.put(f"img/{i}.png", image_bytes(i)) for i in range(8)]
    manifest = store.put("m.txt", "\n".join(images).encode())
    env = {**os.environ, **store.env}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "nsfw_scan.pipeline.cli", "run", "--manifest", manifest,
                                  "--output", store.uri("out"), *store.flags], stdout=subprocess.DEVNULL, stderr=log,
                                 env=env)
    try:
        deadline = time.monotonic() + 300
        while not store.keys("out/_LOCK"):  # until it holds the folder
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.1)
        first.send_signal(signal.SIGSTOP)  # still running, as far as anyone can tell, however long this takes
        second = nsfw_scan("run", "--manifest", manifest, "--output", store.uri("out"), *store.flags)
        assert second.returncode == 2, second.stderr
        line = [x for x in second.stderr.splitlines() if "another run is writing" in x]
        assert len(line) == 1 and f"pid {first.pid}, started at " in line[0]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
    assert store.keys("out/_LOCK")  # a killed run cannot release its lock
    # what a run killed while writing leaves: Beam's temporary files, a folder deeper
    unfinished = store.put("out/run-20260101T000000000000Z/beam-temp-part-1/2.parquet", b"partial")

    third = nsfw_scan("run", "--manifest", manifest, "--output", store.uri("out"), *store.flags)
    assert third.returncode == 0, third.stderr
    assert "taking over the lock" in third.stderr and "no longer exists" in third.stderr
    assert set(one_row_per_uri(store, "out")) == set(images)
    assert not store.keys("out/_LOCK") and not store.keys("out/run-20260101")
    assert f"removed {unfinished.rsplit('/', 2)[0]}: a run that did not finish" in third.stderr


def test_a_hash_list_in_the_bucket_matches_and_hashes_go_back_to_it(store, tmp_path):
    import gzip

    from nsfw_scan.model.pictures.preprocess import load_image
    from support.images import encoded, rgb

    photos = {name: encoded(rgb(name, (160, 120)), "JPEG", quality=85) for name in ("coffee.png", "chelsea.png")}
    uris = {name: store.put(f"img/{name}.jpg", data) for name, data in photos.items()}
    store.put("manifests/m.txt", "\n".join(uris.values()).encode())
    listed = load_image(photos["coffee.png"]).views[0].pdq.hex
    store.put("lists/known.csv.gz", gzip.compress(f"pdq,label\n{listed},cup\n".encode()))
    summary = run(["--manifest", store.uri("manifests/m.txt"), "--output", store.uri("out"),
                   "--match-list", store.uri("lists/known.csv.gz"), *store.flags])
    assert summary["matched"] == 1
    found = one_row_per_uri(store, "out")
    assert found[uris["coffee.png"]]["match"] == "cup" and found[uris["coffee.png"]]["match_distance"] == 0
    assert found[uris["chelsea.png"]]["match"] is None
    done = nsfw_scan("hashes", store.uri("out"), "--decision", "safe", "--out", store.uri("lists/safe.csv"), *store.flags)
    assert done.returncode == 0, done.stderr
    lines = store.get("lists/safe.csv").decode().splitlines()
    assert lines[0] == "pdq,label,uri" and len(lines) == 3
