"""Identical bytes at different URIs are scored once; later runs reuse the score."""

import shutil

import pyarrow.parquet as pq

from nsfw_scan.pipeline.run import run
from support.corpus import HOSTILE, REAL, reference


def test_identical_files_share_one_result_within_and_across_runs(tmp_path):
    copies = []
    for i in range(3):  # the same upload under three names (far from every threshold, on both paths)
        copies.append(tmp_path / f"reupload_{i}.png")
        shutil.copy(REAL / "chelsea.png", copies[-1])
    broken = [tmp_path / "broken_a.png", tmp_path / "broken_b.png"]
    for path in broken:
        shutil.copy(HOSTILE / "truncated_image.png", path)
    manifest, out = tmp_path / "m.txt", tmp_path / "out"
    manifest.write_text("\n".join(map(str, [*copies, REAL / "coffee.png", *broken, tmp_path / "gone.png"])) + "\n")

    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"])
    assert summary["content_duplicates"] == 3  # two copies of the upload, one broken copy
    assert summary["rows"] == 7 and summary["scored"] == 4 and summary["errors"] == 3
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert len(rows) == 7
    expected = reference("real")["chelsea.png"]
    for path in copies:
        row = rows[str(path)]
        assert abs(row["yahoo_score"] - expected) < 1e-3 and row["width"] == 451
        assert (row["score"], row["view"], row["sha256"]) == tuple(rows[str(copies[0])][k] for k in ("score", "view", "sha256"))
    assert {rows[str(p)]["error"].split(":")[0] for p in broken} == {"truncated"}
    assert rows[str(tmp_path / "gone.png")]["error"].startswith("not_found")

    # the next night: a new URI with bytes an earlier run already scored
    later = tmp_path / "reupload_late.png"
    shutil.copy(REAL / "chelsea.png", later)
    manifest.write_text(f"{later}\n{REAL / 'coins.png'}\n")
    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup"])
    assert summary["content_reused"] == 1 and summary["scored"] == 2 and summary["model_loads"] == 1
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    assert rows[str(later)]["score"] == rows[str(copies[0])]["score"] and rows[str(later)]["decision"] == "safe"
    assert len(rows) == 9


def test_scores_of_another_model_are_never_relabelled(tmp_path, scorer):
    """Rows name the model that computed their score, and content de-duplication reuses only a
    score from the same model and loader."""
    import numpy as np
    from PIL import Image

    from nsfw_scan.model.pictures.preprocess import load_image

    rng = np.random.default_rng(7)
    first, copy = tmp_path / "upload.png", tmp_path / "reupload.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(first)
    shutil.copy(first, copy)
    manifest, out = tmp_path / "m.txt", tmp_path / "out"

    manifest.write_text(f"{first}\n")
    assert run(["--manifest", str(manifest), "--output", str(out), "--precision", "bfloat16"])["scored"] == 1
    [row] = pq.read_table(out).to_pylist()
    assert row["model"] == scorer.model_id + ":bfloat16" and row["loader"] == "yahoo"

    manifest.write_text(f"{first}\n{copy}\n")  # the same bytes again, now with the exact model
    summary = run(["--manifest", str(manifest), "--output", str(out), "--content-dedup", "--exact"])
    assert summary["content_reused"] == 0 and summary["scored"] == 1
    rows = {r["uri"]: r for r in pq.read_table(out).to_pylist()}
    exact = float(scorer.score(load_image(first.read_bytes(), "yahoo").array[None])[0])
    assert rows[str(copy)]["model"] == scorer.model_id
    assert abs(rows[str(copy)]["score"] - exact) < 1e-6
