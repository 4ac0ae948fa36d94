"""The opt-in engine and loader: onnxruntime on the same weights, the fast JPEG loader."""

import json

import numpy as np
import pytest

from nsfw_scan.model.engine_specs import OnnxRuntimeSpec
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.yahoo_steps import network_input
from support.cli import nsfw_scan
from support.corpus import REAL, corpus_files
from support.jobs import by_uri, run_job


def real_batch(loader="yahoo"):
    return np.stack([load_image((REAL / f).read_bytes(), loader).array for f in corpus_files(REAL)])


def test_onnxruntime_engine_agrees_with_tensorflow(scorer):
    batch = real_batch()
    np.testing.assert_allclose(OnnxRuntimeSpec().load().score(batch), scorer.score(batch), atol=1e-4)


def test_fast_loader_stays_within_a_thousandth_on_photos(scorer):
    exact, fast = scorer.score(real_batch()), scorer.score(real_batch("fast"))
    # measured 3.5e-5 on this corpus (benchmarks/fast_loader.py); JPEGs are decoded at 1/2 scale
    assert np.abs(exact - fast).max() < 1e-3


def test_run_with_both_opt_ins(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(str(REAL / f) for f in corpus_files(REAL)) + "\n")
    # Yahoo's exact steps (not the cascade, whose bfloat16 first pass moves scores by more); the
    # onnxruntime engine takes 224x224 views only: no region maps
    refused = nsfw_scan("run", "--manifest", str(manifest), "--output", str(tmp_path / "refused"),
                        "--engine", "onnxruntime")
    assert refused.returncode == 2 and "--views whole" in refused.stderr and not (tmp_path / "refused").exists()
    exact_summary, exact = run_job(tmp_path / "exact", manifest, extra=["--exact", "--views", "whole"])
    summary, rows = run_job(tmp_path / "fast", manifest,
                            extra=["--engine", "onnxruntime", "--loader", "fast", "--views", "whole"])
    assert summary["engine"] == "onnxruntime" and summary["model_loads"] == 1
    exact, rows = by_uri(exact), by_uri(rows)
    assert {r["loader"] for r in rows.values()} == {"fast"}
    assert max(abs(rows[u]["score"] - exact[u]["score"]) for u in exact) < 1e-3
    assert all(rows[u]["decision"] == exact[u]["decision"] for u in exact)


def test_bench_reports_json():
    result = nsfw_scan("bench", "--engine", "onnxruntime", "--seconds", "0.5", "--batch-size", "4", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"engine", "batch_size", "threads", "images_per_s"}
    assert report["engine"] == "onnxruntime" and report["batch_size"] == 4 and report["images_per_s"] > 0


def test_bfloat16_precision_is_close_and_labelled(scorer):
    from nsfw_scan.model.engines import TensorFlowScorer

    bf16 = TensorFlowScorer(precision="bfloat16")
    assert bf16.model_id == scorer.model_id + ":bfloat16"
    batch = real_batch()
    delta = np.abs(bf16.score(batch) - scorer.score(batch))
    # measured up to about 0.02 (benchmarks/deviation.py); not the exact path
    assert 0 < delta.max() < 0.05
    assert bf16.score(batch).dtype == np.float32


def test_scorer_without_warm_up_traces_at_first_use_and_scores_the_same(scorer):
    from nsfw_scan.model.engine_specs import TensorFlowSpec

    batch = real_batch()
    cold = TensorFlowSpec().load(warm_up=False)
    # one image (the single-batch graph) and the whole batch (the graph in pieces), each traced on demand
    np.testing.assert_allclose(cold.score(batch[:1]), scorer.score(batch[:1]), atol=1e-6)
    np.testing.assert_allclose(cold.score(batch), scorer.score(batch), atol=1e-6)


def test_scoring_pixels_gives_the_scores_of_their_network_input(scorer):
    pixels = np.stack([load_image((REAL / f).read_bytes()).views[0].pixels for f in corpus_files(REAL)])
    # the float input made inside the graph is the same numbers numpy makes: the same scores
    np.testing.assert_array_equal(scorer.score_pixels(pixels), scorer.score(network_input(pixels)))
    np.testing.assert_array_equal(scorer.score_pixels(pixels[:1]), scorer.score(network_input(pixels[:1])))
    with pytest.raises(TypeError, match="uint8"):
        scorer.score_pixels(network_input(pixels[:1]))
