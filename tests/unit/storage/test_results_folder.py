"""The results folder as the commands read it: older files' missing columns filled per table."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nsfw_scan.storage.results_folder import NoResults, ResultsFolder
from nsfw_scan.storage.schema import Column, output_schema

HASH = "f" * 64
# rows as a version before error_kind, source columns, yahoo_pdq and view_score wrote them
OLDER = [
    {Column.URI: "/a.jpg", Column.ERROR: "not_found: no such file", Column.DECISION: "error"},
    {Column.URI: None, Column.ERROR: "bad_manifest_line: /m/night.txt line 12: a NUL in the URI",
     Column.DECISION: "error"},
    {Column.URI: "/b.gif", Column.SCORE: 0.9, Column.DECISION: "nsfw", Column.VIEW: "frame 3", Column.PDQ: HASH,
     Column.PDQ_QUALITY: 90},
    {Column.URI: "/c.png", Column.SCORE: 0.1, Column.DECISION: "safe", Column.VIEW: "yahoo", Column.PDQ: HASH,
     Column.PDQ_QUALITY: 80},
    {Column.URI: "/d.png", Column.ERROR: "a message of no kind", Column.DECISION: "error"},
]
DROPPED = (Column.ERROR_KIND, Column.SOURCE_MANIFEST, Column.SOURCE_LINE, Column.YAHOO_PDQ,
           Column.YAHOO_PDQ_QUALITY, Column.VIEW_SCORE)


@pytest.fixture
def folder(tmp_path):
    schema = pa.schema([field for field in output_schema({"upload_id": pa.string()}) if field.name not in DROPPED])
    rows = [{**dict.fromkeys(schema.names), "upload_id": f"u{i}", **row} for i, row in enumerate(OLDER)]
    (tmp_path / "run-1").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "run-1" / "part-00000-of-00001.parquet")
    return ResultsFolder(str(tmp_path))


def test_an_older_files_rows_get_every_result_column_from_what_it_wrote(folder):
    (table,) = folder.tables()
    assert table.column_names[:2] == [Column.URI, "upload_id"]  # its own columns first, in its order
    assert set(output_schema({}).names) <= set(table.column_names)
    rows = table.to_pylist()
    assert [r[Column.ERROR_KIND] for r in rows] == ["not_found", "bad_manifest_line", None, None, None]
    assert (rows[1][Column.SOURCE_MANIFEST], rows[1][Column.SOURCE_LINE]) == ("/m/night.txt", 12)
    assert [r[Column.SOURCE_MANIFEST] for r in rows[2:]] == [None] * 3
    # its pdq was Yahoo's view's: kept as yahoo_pdq; the flagged frame's own hash was never made
    assert [(r[Column.PDQ], r[Column.YAHOO_PDQ], r[Column.YAHOO_PDQ_QUALITY]) for r in rows[2:4]] == [
        (None, HASH, 90), (HASH, HASH, 80)]
    assert rows[2][Column.PDQ_QUALITY] is None and rows[3][Column.PDQ_QUALITY] == 80
    assert all(r[Column.VIEW_SCORE] is None for r in rows)


def test_chosen_columns_are_read_and_filled_alone(folder):
    (path,) = folder.files()
    table = folder.read(path, [Column.URI, Column.ERROR_KIND, Column.YAHOO_PDQ])
    assert table.column_names == [Column.URI, Column.ERROR_KIND, Column.YAHOO_PDQ]
    assert table[Column.ERROR_KIND].to_pylist() == ["not_found", "bad_manifest_line", None, None, None]
    assert table[Column.YAHOO_PDQ].to_pylist() == [None, None, HASH, HASH, None]


def test_a_folder_without_results_is_named(tmp_path):
    with pytest.raises(NoResults, match="no results found"):
        ResultsFolder(str(tmp_path)).files()
