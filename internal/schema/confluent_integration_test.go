package schema_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// confluentScript serializes a value, or deserializes a payload, with Confluent's own Python
// serializers (confluent-kafka: Avro through fastavro, Protobuf through the protobuf runtime).
// It reads one JSON request on stdin and prints one JSON answer.
const confluentScript = `
import base64, importlib, json, os, sys, tempfile
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

req = json.load(sys.stdin)
reg = SchemaRegistryClient({"url": req["registry"], "timeout": 20})
ctx = SerializationContext(req["topic"], MessageField.VALUE)
conf = {"auto.register.schemas": True}
if req["format"] == "avro":
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    ser = AvroSerializer(reg, req["schema"], conf=conf)
    de = AvroDeserializer(reg)
else:
    from google.protobuf import json_format
    from grpc_tools import protoc
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    d = tempfile.mkdtemp()
    name = "m" + req["tag"]
    with open(os.path.join(d, name + ".proto"), "w") as f:
        f.write(req["schema"])
    if protoc.main(["protoc", "-I" + d, "--python_out=" + d, name + ".proto"]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, d)
    cls = importlib.import_module(name + "_pb2")
    for part in req["message"].split("."):
        cls = getattr(cls, part)
    conf["use.deprecated.format"] = False
    ser = ProtobufSerializer(cls, reg, conf=conf)
    de = ProtobufDeserializer(cls, {"use.deprecated.format": False})
out = {}
if "value" in req:
    v = req["value"]
    if req["format"] == "protobuf":
        v = json_format.ParseDict(v, cls())
    out["payload"] = base64.b64encode(ser(v, ctx)).decode()
if "payload" in req:
    v = de(base64.b64decode(req["payload"]), ctx)
    if req["format"] == "protobuf":
        v = json_format.MessageToDict(v, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    out["value"] = v
print(json.dumps(out))
`

func confluent(t *testing.T, python string, req map[string]any) map[string]any {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", confluentScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("confluent serializer: %v\n%s", err, stderr.Bytes())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("confluent serializer printed %q: %v", out, err)
	}
	return res
}

const crossAvroSchema = `{"type":"record","name":"Listing","namespace":"xcheck","fields":[
 {"name":"id","type":"long"},{"name":"sku","type":"string"},{"name":"price","type":"double"},{"name":"qty","type":"int"},
 {"name":"active","type":"boolean"},{"name":"category","type":{"type":"enum","name":"Category","symbols":["BOOKS","GAMES"]}},
 {"name":"tags","type":{"type":"array","items":"string"}},{"name":"attrs","type":{"type":"map","values":"long"}},
 {"name":"discount","type":["null","double"],"default":null},
 {"name":"seller","type":{"type":"record","name":"Seller","fields":[{"name":"name","type":"string"},{"name":"rating","type":"float"}]}},
 {"name":"note","type":["null","string"],"default":null}]}`

const crossAvroValue = `{"id":9007199254740993,"sku":"é\"x","price":12.25,"qty":-4,"active":true,"category":"GAMES","tags":["a","b"],
 "attrs":{"k":1},"discount":null,"seller":{"name":"acme","rating":4.5},"note":"n"}`

// TestConfluentSerializersIntegration checks the codecs against Confluent's own serializers
// (confluent-kafka for Python) through the test services' registry: what they write decodes to the
// same value, and what the Encoder writes they read back.
func TestConfluentSerializersIntegration(t *testing.T) {
	registry := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	python := testenv.Require(t, "SCHEMA_CLIENT_PYTHON")
	ctx := context.Background()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	reg := map[string]any{"url": registry}

	check := func(t *testing.T, format, schemaText, message, value, want string) {
		topic := "xcheck-" + format + "-" + suffix
		req := map[string]any{"registry": registry, "topic": topic, "format": format, "schema": schemaText, "message": message, "tag": suffix}
		req["value"] = json.RawMessage(value)
		res := confluent(t, python, req)
		payload, err := base64.StdEncoding.DecodeString(res["payload"].(string))
		if err != nil {
			t.Fatal(err)
		}
		dec := newDecoder(t, map[string]any{"format": format, "registry": reg})
		out, info, err := dec.Decode(ctx, payload, nil)
		if err != nil {
			t.Fatalf("decoding Confluent's % x: %v", payload, err)
		}
		sameJSON(t, out, want)
		if info.Subject != topic+"-value" {
			t.Errorf("decoded subject %q, want %q", info.Subject, topic+"-value")
		}

		encCfg := map[string]any{"format": format, "registry": reg, "subject": topic + "-value"}
		if message != "" && format == "protobuf" {
			encCfg["message"] = "xcheck.r" + suffix + "." + message
		}
		enc := newEncoder(t, encCfg)
		mine, _, err := enc.Encode(ctx, []byte(want), nil)
		if err != nil {
			t.Fatal(err)
		}
		delete(req, "value")
		req["payload"] = base64.StdEncoding.EncodeToString(mine)
		back, err := json.Marshal(confluent(t, python, req)["value"])
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, back, want)
	}

	t.Run("avro", func(t *testing.T) {
		// a schema of this run only, so that its id has this run's subject
		text := strings.Replace(crossAvroSchema, `"namespace":"xcheck"`, `"namespace":"xcheck.r`+suffix+`"`, 1)
		check(t, "avro", text, "", crossAvroValue, crossAvroValue)
	})
	proto := "syntax = \"proto3\";\npackage xcheck.r" + suffix + ";\n" + `
message Listing {
  int64 id = 1;
  string sku = 2;
  double price = 3;
  repeated string tags = 4;
  map<string, int64> attrs = 5;
  Seller seller = 6;
  Category category = 7;
  message Seller {
    string name = 1;
    float rating = 2;
  }
}
enum Category {
  UNKNOWN = 0;
  GAMES = 1;
}
message Other {
  string x = 1;
}
`
	t.Run("protobuf", func(t *testing.T) {
		check(t, "protobuf", proto, "Listing",
			`{"id":"7","sku":"s","price":1.5,"tags":["a"],"attrs":{"k":"2"},"seller":{"name":"acme","rating":4.5},"category":"GAMES"}`,
			`{"id":"7","sku":"s","price":1.5,"tags":["a"],"attrs":{"k":"2"},"seller":{"name":"acme","rating":4.5},"category":"GAMES"}`)
	})
	t.Run("protobuf nested message", func(t *testing.T) { // message indexes [0, 1]: Listing's map entry type is nested message 0
		check(t, "protobuf", proto, "Listing.Seller", `{"name":"n","rating":2}`, `{"name":"n","rating":2}`)
	})
	t.Run("protobuf second message", func(t *testing.T) {
		check(t, "protobuf", proto, "Other", `{"x":"y"}`, `{"x":"y"}`)
	})
}
