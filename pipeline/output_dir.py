"""The output folder: one sub-folder per run, read together as one dataset.

``DIR/run-<UTC time>/part-*.parquet`` are the results of the runs that finished; a run that was
killed leaves only Beam's ``beam-temp-*`` folder, which the next run removes. ``DIR/_SUMMARY.json``
is the latest run's summary. ``pyarrow.parquet.read_table(DIR)`` reads every run.
"""

from __future__ import annotations

import fnmatch
import io
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

RUN_GLOB = "run-*"


def _match(pattern: str) -> list[str]:
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except Exception:  # a folder that does not exist yet
        return []


def result_files(output: str) -> list[str]:
    """Result files of every finished run in ``output``."""
    return _match(FileSystems.join(output, RUN_GLOB, "part-*.parquet"))


def run_result_files(run_folder: str) -> list[str]:
    return _match(FileSystems.join(run_folder, "part-*.parquet"))


def _run_folder(path: str, output: str) -> str:
    relative = path[len(output.rstrip("/")) + 1:]
    return FileSystems.join(output, relative.split("/", 1)[0])


def run_folders(output: str) -> dict[str, bool]:
    """Run folders -> whether the run finished (has result files). Works on object stores too,
    where folders are only prefixes of file names."""
    if "://" not in output:  # local folders can be listed, empty ones included
        return {
            os.path.join(output, name): any(f.startswith("part-") for f in os.listdir(os.path.join(output, name)))
            for name in (os.listdir(output) if os.path.isdir(output) else [])
            if fnmatch.fnmatch(name, RUN_GLOB) and os.path.isdir(os.path.join(output, name))
        }
    runs: dict[str, bool] = {}
    for path in _match(FileSystems.join(output, RUN_GLOB, "*")) + _match(FileSystems.join(output, RUN_GLOB, "*", "*")):
        folder = _run_folder(path, output)
        runs[folder] = runs.get(folder, False) or path.rsplit("/", 1)[-1].startswith("part-")
    return runs


def remove_unfinished_runs(output: str) -> list[str]:
    """Folders of runs that were killed hold only Beam's temporary files: never results."""
    stale = sorted(folder for folder, finished in run_folders(output).items() if not finished)
    if stale:
        FileSystems.delete(stale)
    return stale


def _read(path: str, columns=None):
    with FileSystems.open(path) as f:
        return pq.read_table(io.BytesIO(f.read()), columns=columns)


def _rewrite(path: str, table) -> None:
    tmp = path + ".rewrite"
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    with FileSystems.create(tmp) as f:
        f.write(buffer.getvalue())
    FileSystems.rename([tmp], [path])


def drop_superseded_errors(earlier: list[str], new: list[str]) -> int:
    """After ``--rescore-errors``: remove earlier error rows whose URI the new run has redone,
    so each URI keeps exactly one row. Holds only the earlier runs' error URIs in memory, and
    rewrites only the files that hold such rows."""
    failed_in: dict[str, set[str]] = {}
    for path in earlier:
        table = _read(path, ["uri", "error"])
        failed = {u for u, e in zip(table["uri"].to_pylist(), table["error"].to_pylist()) if u and e}
        if failed:
            failed_in[path] = failed
    if not failed_in:
        return 0
    failed = set().union(*failed_in.values())
    redone = set()
    for path in new:
        redone.update(u for u in _read(path, ["uri"])["uri"].to_pylist() if u in failed)
    dropped = 0
    for path, failed in failed_in.items():
        if not failed & redone:
            continue
        table = _read(path)
        keep = pc.invert(pc.fill_null(pc.is_in(table["uri"], value_set=pa.array(sorted(redone), pa.string())), False))
        kept = table.filter(keep)
        dropped += table.num_rows - kept.num_rows
        _rewrite(path, kept)
    return dropped


def remove_runs(folders: list[str]) -> None:
    """After ``--force``: the new run replaces these earlier ones."""
    if folders:
        FileSystems.delete(sorted(folders))
