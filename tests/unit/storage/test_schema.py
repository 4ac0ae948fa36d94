import pyarrow as pa

from nsfw_scan.storage.schema import RESERVED, Column, output_schema


def test_every_column_name_is_in_the_schema_once_and_in_order():
    names = [value for key, value in vars(Column).items() if key.isupper()]
    schema = output_schema({"id": pa.string()})
    assert schema.names == [Column.URI, "id", *names[1:]]
    assert len(set(names)) == len(names)
    assert RESERVED == set(names)
