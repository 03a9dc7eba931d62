package servicetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestSchemaRegistrySmokeIntegration goes through the Confluent Schema Registry API of the test
// registry: it registers an Avro, a Protobuf and a JSON schema, reads them back by id, and checks
// that a subject with BACKWARD compatibility refuses an incompatible Avro change with 409.
func TestSchemaRegistrySmokeIntegration(t *testing.T) {
	base := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	c := &srClient{t: t, base: base, http: &http.Client{Timeout: 30 * time.Second}}
	prefix := uniqueName(t, "smoke")

	const avroV1 = `{"type":"record","name":"Order","namespace":"smoke","fields":[{"name":"id","type":"long"}]}`
	const proto = "syntax = \"proto3\";\npackage smoke;\nmessage Order {\n  int64 id = 1;\n  string name = 2;\n}\n"
	const jsonSchema = `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}`
	cases := []struct{ subject, schemaType, schema string }{
		{prefix + "-avro-value", "", avroV1}, // no schemaType: AVRO, as in Confluent
		{prefix + "-proto-value", "PROTOBUF", proto},
		{prefix + "-json-value", "JSON", jsonSchema},
	}
	ids := map[string]int{}
	for _, tc := range cases {
		subject := tc.subject
		t.Cleanup(func() {
			c.do(http.MethodDelete, "/subjects/"+subject, nil, nil)
			c.do(http.MethodDelete, "/subjects/"+subject+"?permanent=true", nil, nil)
		})
		req := map[string]string{"schema": tc.schema}
		if tc.schemaType != "" {
			req["schemaType"] = tc.schemaType
		}
		var reg struct{ ID int }
		if code := c.do(http.MethodPost, "/subjects/"+subject+"/versions", req, &reg); code != 200 || reg.ID <= 0 {
			t.Fatalf("register %s: HTTP %d, id %d", subject, code, reg.ID)
		}
		ids[subject] = reg.ID

		var got struct{ Schema, SchemaType string }
		if code := c.do(http.MethodGet, fmt.Sprintf("/schemas/ids/%d", reg.ID), nil, &got); code != 200 {
			t.Fatalf("GET /schemas/ids/%d: HTTP %d", reg.ID, code)
		}
		if got.Schema != tc.schema || got.SchemaType != tc.schemaType {
			t.Fatalf("GET /schemas/ids/%d = %q (%q), want %q (%q)", reg.ID, got.Schema, got.SchemaType, tc.schema, tc.schemaType)
		}
		var versions []struct {
			Subject string
			Version int
		}
		if code := c.do(http.MethodGet, fmt.Sprintf("/schemas/ids/%d/versions", reg.ID), nil, &versions); code != 200 {
			t.Fatalf("GET /schemas/ids/%d/versions: HTTP %d", reg.ID, code)
		}
		if len(versions) != 1 || versions[0].Subject != subject || versions[0].Version != 1 {
			t.Fatalf("GET /schemas/ids/%d/versions = %+v, want [{%s 1}]", reg.ID, versions, subject)
		}
	}

	// The same schema registered again under its subject keeps its id.
	avroSubject := cases[0].subject
	var again struct{ ID int }
	if code := c.do(http.MethodPost, "/subjects/"+avroSubject+"/versions", map[string]string{"schema": avroV1}, &again); code != 200 || again.ID != ids[avroSubject] {
		t.Fatalf("register the same schema again: HTTP %d, id %d, want id %d", code, again.ID, ids[avroSubject])
	}

	if code := c.do(http.MethodPut, "/config/"+avroSubject, map[string]string{"compatibility": "BACKWARD"}, nil); code != 200 {
		t.Fatalf("PUT /config/%s: HTTP %d", avroSubject, code)
	}
	// A new field without a default cannot read the old data: refused.
	const avroBad = `{"type":"record","name":"Order","namespace":"smoke","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int"}]}`
	var refused struct {
		ErrorCode int `json:"error_code"`
		Message   string
	}
	if code := c.do(http.MethodPost, "/subjects/"+avroSubject+"/versions", map[string]string{"schema": avroBad}, &refused); code != http.StatusConflict || refused.ErrorCode != 409 {
		t.Fatalf("register an incompatible schema: HTTP %d %+v, want 409", code, refused)
	}
	// With a default it can: version 2.
	const avroV2 = `{"type":"record","name":"Order","namespace":"smoke","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int","default":0}]}`
	var v2 struct{ ID int }
	if code := c.do(http.MethodPost, "/subjects/"+avroSubject+"/versions", map[string]string{"schema": avroV2}, &v2); code != 200 || v2.ID <= 0 || v2.ID == ids[avroSubject] {
		t.Fatalf("register a compatible schema: HTTP %d, id %d", code, v2.ID)
	}
	var vs []int
	if code := c.do(http.MethodGet, "/subjects/"+avroSubject+"/versions", nil, &vs); code != 200 || !reflect.DeepEqual(vs, []int{1, 2}) {
		t.Fatalf("GET /subjects/%s/versions: HTTP %d %v, want [1 2]", avroSubject, code, vs)
	}
}

type srClient struct {
	t    *testing.T
	base string
	http *http.Client
}

// do sends body (when not nil) as JSON, decodes the answer into out (when not nil) and returns
// the HTTP status.
func (c *srClient) do(method, path string, body, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: HTTP %d, answer %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}
