"""Reads an Iceberg table with PyIceberg and prints what it found as one JSON object.

usage: read_table.py CATALOG_NAME CATALOG_PROPS_JSON NAMESPACE.TABLE SORT_COLUMN
prints {"rows": [...every row, sorted by SORT_COLUMN...],
        "schema": [{"name", "type", "required"}...],
        "partition_spec": ["day(ts)", ...],
        "partitions": [{"partition": {...}, "records": N}...],
        "summaries": [{...summary of each snapshot, oldest first...}]}
"""
import json
import sys

from pyiceberg.catalog import load_catalog

name, props, ident, sort_col = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
table = load_catalog(name, **props).load_table(ident)
rows = table.scan().to_arrow().sort_by(sort_col).to_pylist()
schema = table.schema()
names = {f.field_id: f.name for f in schema.fields}
spec = [f"{f.transform}({names[f.source_id]})" for f in table.spec().fields]
partitions = []
if table.current_snapshot() is not None:
    for p in table.inspect.partitions().to_pylist():
        partitions.append({"partition": p.get("partition"), "records": p["record_count"]})
summaries = []
for snap in table.snapshots():
    s = dict(snap.summary.additional_properties) if snap.summary else {}
    if snap.summary:
        s["operation"] = snap.summary.operation.value
    summaries.append(s)
print(json.dumps({
    "rows": rows,
    "schema": [{"name": f.name, "type": str(f.field_type), "required": f.required} for f in schema.fields],
    "partition_spec": spec,
    "partitions": partitions,
    "summaries": summaries,
}, default=str))
