"""The job run in this process, its rows by URI, two runs' rows compared, and Beam's
TestPipeline on the in-process runner."""

from __future__ import annotations

import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from nsfw_scan.pipeline.run import run
from nsfw_scan.storage.layout import ROWS_DIR, ROWS_PREFIX


def results(output) -> list[dict]:
    return pq.read_table(output).to_pylist()


def by_uri(rows) -> dict[str, dict]:
    assert len({r["uri"] for r in rows}) == len(rows), "one row per URI"
    return {r["uri"]: r for r in rows}


def assert_same_outcomes(a: dict[str, dict], b: dict[str, dict], tolerance: float = 1e-6) -> None:
    """Same URIs, decisions and errors; scores equal up to float rounding (a batch's split
    into pieces, which varies with how elements are batched, moves scores by ~1e-8)."""
    assert {u: (r["decision"], r["error"]) for u, r in a.items()} == {u: (r["decision"], r["error"]) for u, r in b.items()}
    for uri, row in a.items():
        if row["score"] is None:
            assert b[uri]["score"] is None, uri
        else:
            assert abs(row["score"] - b[uri]["score"]) <= tolerance, uri


def durable_rows(output) -> int:
    """Rows the runs in ``output`` that have not finished have made durable so far."""
    return sum(pq.read_metadata(f).num_rows for f in output.glob(f"run-*/{ROWS_DIR}/{ROWS_PREFIX}*.parquet"))


def run_job(tmp_path, *manifests, extra=()):
    output = tmp_path / "out"
    argv = [a for m in manifests for a in ("--manifest", str(m))] + ["--output", str(output), *map(str, extra)]
    summary = run(argv)
    return summary, results(output)


def pipeline():
    # Beam's in-process runner (what DirectRunner uses for batch pipelines), never Prism
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return BeamTestPipeline(runner=FnApiRunner())


def model_loads(rows, per_model: set[int] = frozenset({1})) -> set[int]:
    """The ``model_loads`` a run may report when each model that gave a row's score (the
    cascade's first pass, and the exact one for rows near a threshold) was loaded a number of
    times in ``per_model``: once per worker process."""
    models = {row["model"] for row in (rows.values() if isinstance(rows, dict) else rows) if row["model"]}
    totals = {0}
    for _ in models:
        totals = {total + n for total in totals for n in per_model}
    return totals
