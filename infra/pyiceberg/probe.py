"""Round trip through PyIceberg: create a table in a throwaway SQLite catalog, append, read back."""
import sys
import tempfile

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

with tempfile.TemporaryDirectory() as d:
    cat = SqlCatalog("probe", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/wh")
    cat.create_namespace("ns")
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64())})
    tbl = cat.create_table(("ns", "t"), schema=data.schema)
    tbl.append(data)
    got = cat.load_table(("ns", "t")).scan().to_arrow()["id"].to_pylist()
    if sorted(got) != [1, 2, 3]:
        sys.exit(f"pyiceberg probe: read back {got}, want [1, 2, 3]")
print("ok")
