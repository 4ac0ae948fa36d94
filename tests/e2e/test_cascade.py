"""The cascade: every file scored first by a cheaper path (the fast loader, bfloat16), Yahoo's
exact steps again only for rows near a threshold or not decoded; decisions are the exact job's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from nsfw_scan.model.decision import Thresholds
from nsfw_scan.model.errors import Unscorable
from nsfw_scan.model.pictures.preprocess import load_image
from nsfw_scan.model.pictures.views import ViewPolicy
from nsfw_scan.model.scorer import PRECISIONS
from nsfw_scan.pipeline.config import Cascade
from support.cli import nsfw_scan
from support.corpus import COMPACT, HOSTILE, REAL, SHARED_HOSTILE, SHARED_REAL, corpus_files, needs_shared, reference

MARGIN = Cascade().margin
SAFETY = 2  # the margin is at least twice the largest deviation of the first pass measured
GENERATED = COMPACT / "generated"


def files(*folders: Path) -> list[Path]:
    return [folder / name for folder in folders for name in corpus_files(folder) if not name.endswith(".md")]


CORPORA = {
    "committed": lambda: files(REAL, HOSTILE, GENERATED),
    "shared": lambda: files(SHARED_REAL, SHARED_HOSTILE),
}


def run(tmp_path: Path, name: str, paths: list[Path], *flags) -> tuple[dict, dict, str]:
    """Rows by URI, the summary and the console of one ``nsfw-scan run``."""
    manifest, out = tmp_path / f"{name}.txt", tmp_path / name
    manifest.write_text("".join(f"{p}\n" for p in paths))
    done = nsfw_scan("run", "--manifest", manifest, "--output", out, *flags, timeout=1800)
    assert done.returncode == 0, done.stderr
    rows = pq.read_table(next(out.glob("run-*"))).to_pylist()
    assert len(rows) == len({r["uri"] for r in rows})
    return {r["uri"]: r for r in rows}, json.loads((out / "_SUMMARY.json").read_text()), done.stdout


def suffix(precision: str) -> str:
    """What a model's id gains in ``precision`` (``model.weights.model_id``)."""
    return "" if precision == "float32" else f":{precision}"


@pytest.mark.slow
@pytest.mark.parametrize("corpus,precision", [("committed", "float32"), ("committed", "bfloat16"),
                                              pytest.param("shared", "auto", marks=needs_shared)])
def test_the_cascade_decides_as_the_exact_job(tmp_path, corpus, precision):
    """In either precision the first pass may run in (forced, or chosen by measurement on this
    CPU: ``cascade.precision``), the decisions are the exact job's, and the rows and the
    summary name the precision that ran."""
    paths = CORPORA[corpus]()
    exact, exact_summary, exact_console = run(tmp_path, "exact", paths, "--exact")
    config = tmp_path / "first-pass.yaml"
    config.write_text(f"cascade: {{precision: {precision}}}\n")
    cascade, summary, console = run(tmp_path, "cascade", paths, "--config", config)
    assert exact.keys() == cascade.keys() == {str(p) for p in paths}
    chosen = summary["first_pass_precisions"]  # worker processes per precision chosen by measurement
    if precision == "auto":
        assert len(chosen) == 1 and sum(chosen.values()) >= 1, chosen
        (precision,) = chosen
        assert f"first pass in {precision} (" in console
    else:
        assert chosen == {}

    differ = {uri: (exact[uri]["decision"], cascade[uri]["decision"]) for uri in exact
              if (exact[uri]["decision"], exact[uri]["error_kind"]) != (cascade[uri]["decision"], cascade[uri]["error_kind"])}
    assert not differ, differ
    scored = [uri for uri in exact if exact[uri]["score"] is not None]
    assert all(exact[uri]["exact"] and exact[uri]["loader"] == "yahoo" for uri in scored)
    assert not [line for line in exact_console.splitlines() if line.startswith("cascade ")]
    assert not exact_summary["cascade"] and exact_summary["rescored"] == 0

    again = [uri for uri in scored if cascade[uri]["exact"]]
    first = [uri for uri in scored if not cascade[uri]["exact"]]
    assert first, "the first pass kept no score: the cascade did not run"
    for uri in again:  # scored again: the exact job's row
        row = cascade[uri]
        assert (row["loader"], row["model"]) == ("yahoo", exact[uri]["model"])
        assert row["score"] == pytest.approx(exact[uri]["score"], abs=1e-6)
        assert row["yahoo_score"] == pytest.approx(exact[uri]["yahoo_score"], abs=1e-6)
    thresholds = Thresholds()
    for uri in first:  # kept: its views settle its decision, and each scores close to the exact one
        row = cascade[uri]
        assert row["loader"] == "fast" and row["model"] == exact[uri]["model"] + suffix(precision)
        if row["view"] == "yahoo":  # Yahoo's view decides: it lies far from both thresholds
            assert not thresholds.near(row["score"], MARGIN), (uri, row["score"])
        assert abs(row["yahoo_score"] - exact[uri]["yahoo_score"]) <= MARGIN / SAFETY, uri
        if row["view"] == exact[uri]["view"]:
            assert abs(row["view_score"] - exact[uri]["view_score"]) <= MARGIN / SAFETY, uri
        assert row["views"] == exact[uri]["views"]
    decoded_not = [uri for uri in cascade if cascade[uri]["score"] is None and cascade[uri]["bytes"]]
    assert summary["rescored"] == len(again) + len(decoded_not)
    assert f"cascade        {summary['rescored']} of {summary['rows']} rows" in console


def test_a_row_near_the_users_threshold_gets_the_exact_score(tmp_path):
    """With a threshold (and a narrow margin) put next to one photo's exact score, that photo is
    scored again exactly and decided by it; photos far from it keep their first-pass scores."""
    scores = reference("real")
    config = tmp_path / "near.yaml"
    config.write_text(f"thresholds: {{safe_below: {scores['astronaut.png'] + 0.003:.4f}, nsfw_from: 0.9}}\n"
                      "cascade: {margin: 0.005, precision: bfloat16}\n")
    paths = [REAL / name for name in ("astronaut.png", "coffee.png", "grace_hopper.jpg")]
    # the whole pictures only: a region of the astronaut lies above this threshold and would decide it
    rows, summary, _ = run(tmp_path, "near", paths, "--config", config, "--views", "whole")
    near = rows[str(REAL / "astronaut.png")]
    assert near["exact"] and near["loader"] == "yahoo" and ":" not in near["model"].split(":", 2)[2]
    assert near["score"] == pytest.approx(scores["astronaut.png"], abs=1e-3)
    assert near["decision"] == "safe"
    for name in ("coffee.png", "grace_hopper.jpg"):
        far = rows[str(REAL / name)]
        assert far["exact"] is False and far["loader"] == "fast" and far["model"].endswith(":bfloat16")
        assert far["score"] == pytest.approx(scores[name], abs=1e-3) and far["decision"] == "safe"
    assert summary["rescored"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("corpus", ["committed", pytest.param("shared", marks=needs_shared)])
def test_the_first_pass_stays_within_half_the_margin(scorer, corpus, precision):
    """Every view of every file both loaders decode, with regions and without: the first pass (fast loader, in each
    precision it may run in) scores within margin / 2 of the exact path (the margin's safety
    factor, measured); a region map's score is its highest window's."""
    from nsfw_scan.model.engines import TensorFlowScorer

    cheap = TensorFlowScorer(precision=precision)
    exact_views, cheap_views = [], []
    for path in CORPORA[corpus]():
        data = path.read_bytes()
        for policy in (ViewPolicy(), ViewPolicy("whole")):  # with regions (JPEGs decoded whole) and without
            try:
                exact, fast = load_image(data, "yahoo", policy=policy), load_image(data, Cascade().loader, policy=policy)
            except Unscorable:
                continue
            assert len(exact.views) == len(fast.views), path
            exact_views += [v.pixels for v in exact.views]
            cheap_views += [v.pixels for v in fast.views]
    assert len(exact_views) > (1000 if corpus == "shared" else 40)
    deviation = 0.0
    for start in range(0, len(exact_views), 32):
        e = [score for score, _ in scorer.score_views(exact_views[start:start + 32])]
        c = [score for score, _ in cheap.score_views(cheap_views[start:start + 32])]
        deviation = max(deviation, float(np.abs(np.subtract(e, c)).max()))
    assert 0 < deviation <= MARGIN / SAFETY, deviation
