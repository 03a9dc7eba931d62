"""Reads an Iceberg table with PyIceberg and prints what it found as JSON.

usage: read_iceberg.py CATALOG_NAME CATALOG_PROPS_JSON NAMESPACE.TABLE
prints {"rows": [...sorted by id...], "summary": {...current snapshot summary...}, "snapshots": N}
"""
import json
import sys

from pyiceberg.catalog import load_catalog

name, props, ident = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
table = load_catalog(name, **props).load_table(ident)
rows = table.scan().to_arrow().sort_by("id").to_pylist()
snap = table.current_snapshot()
print(json.dumps({
    "rows": rows,
    "summary": dict(snap.summary.additional_properties, operation=snap.summary.operation.value) if snap else {},
    "snapshots": len(table.snapshots()),
}, default=str))
