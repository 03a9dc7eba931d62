"""An independent schema-registry client for the schema integration tests.

It produces and consumes Kafka records in the registry's wire format with Confluent's own Python
serializers (Avro through fastavro, Protobuf through the protobuf runtime), so the tests check
Sluice's decoding and encoding against a client that shares no code with it.

    client.py produce --bootstrap B --registry URL --topic T --format avro --schema FILE < rows.jsonl
    client.py consume --bootstrap B --registry URL --topic T --format avro --count N [--schema FILE]

produce reads one JSON object per line and writes it as one record (key: the row's "key" field,
when there is one). consume prints one JSON object per record: {"value": ..., "schema_id": N},
with the values as the deserializer returns them (bytes as base64).

For Protobuf, --schema is a .proto file; the first message (or --message NAME) is the record type.
"""
import argparse
import base64
import importlib
import json
import os
import struct
import subprocess
import sys
import tempfile

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext


def proto_class(path, message):
    """Compiles the .proto file with protoc (grpcio-tools) and returns the message class."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp()
    d, name = os.path.split(os.path.abspath(path))
    if protoc.main(["protoc", f"-I{d}", f"--python_out={out}", name]) != 0:
        sys.exit(f"protoc failed on {path}")
    sys.path.insert(0, out)
    mod = importlib.import_module(name[:-len(".proto")] + "_pb2")
    msgs = mod.DESCRIPTOR.message_types_by_name
    if message:
        return getattr(mod, message)
    return getattr(mod, next(iter(msgs)))


def serializer(args, registry):
    conf = {"auto.register.schemas": True}
    if args.format == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer
        with open(args.schema) as f:
            schema = f.read()
        return AvroSerializer(registry, schema, conf=conf), None
    if args.format == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        cls = proto_class(args.schema, args.message)
        conf["use.deprecated.format"] = False
        return ProtobufSerializer(cls, registry, conf=conf), cls
    sys.exit(f"unknown format {args.format}")


def produce(args):
    registry = SchemaRegistryClient({"url": args.registry, "timeout": 20})
    ser, cls = serializer(args, registry)
    p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5, "enable.idempotence": True})
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    n = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        row = json.loads(line)
        key = row.get("key")
        if cls is not None:
            from google.protobuf import json_format
            value = json_format.ParseDict(row, cls())
        else:
            value = row
        p.produce(args.topic, key=None if key is None else str(key).encode(), value=ser(value, ctx))
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left:
        sys.exit(f"{left} record(s) not delivered")
    print(json.dumps({"produced": n}))


def plain(v):
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def consume(args):
    registry = SchemaRegistryClient({"url": args.registry, "timeout": 20})
    if args.format == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        de = AvroDeserializer(registry)
    elif args.format == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        cls = proto_class(args.schema, args.message)
        de = ProtobufDeserializer(cls, {"use.deprecated.format": False})
    else:
        sys.exit(f"unknown format {args.format}")
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([args.topic])
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    got, idle = 0, 0
    while got < args.count and idle < args.timeout * 10:
        m = c.poll(0.1)
        if m is None:
            idle += 1
            continue
        if m.error():
            sys.exit(f"consume: {m.error()}")
        idle = 0
        raw = m.value()
        if len(raw) < 5 or raw[0] != 0:
            sys.exit(f"record at offset {m.offset()} lacks the registry's wire header")
        sid = struct.unpack(">I", raw[1:5])[0]
        v = de(raw, ctx)
        if args.format == "protobuf":
            from google.protobuf import json_format
            v = json_format.MessageToDict(v, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        print(json.dumps({"value": plain(v), "schema_id": sid, "partition": m.partition(), "offset": m.offset()}))
        got += 1
    c.close()
    if got < args.count:
        sys.exit(f"consumed {got} of {args.count} records before {args.timeout}s without one")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["produce", "consume"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--format", choices=["avro", "protobuf"], required=True)
    ap.add_argument("--schema")
    ap.add_argument("--message")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--group", default="schemaclient")
    ap.add_argument("--timeout", type=int, default=30, help="seconds without a record before consume gives up")
    args = ap.parse_args()
    if args.command == "produce":
        if not args.schema:
            sys.exit("produce needs --schema")
        produce(args)
    else:
        consume(args)


if __name__ == "__main__":
    main()
