package schema_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestRegistryDownIsUnavailableAndRetried(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "prices-value", "AVRO", listingSchema)
	payload, _ := avro.Marshal(avro.MustParse(listingSchema), sampleListing(0))
	d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	ctx := context.Background()

	reg.SetDown(true)
	_, _, err := d.Decode(ctx, wire(id, payload), nil)
	var re *schema.RecordError
	if !errors.Is(err, schema.ErrUnavailable) || errors.As(err, &re) || errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("err = %v, want ErrUnavailable only", err)
	}
	if !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %q, want the status", err)
	}
	reg.SetDown(false) // the failure is not remembered
	if _, _, err := d.Decode(ctx, wire(id, payload), nil); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryUnreachable(t *testing.T) {
	cfg, err := schema.DecodeSpec.Config(map[string]any{"format": "avro",
		"registry": map[string]any{"url": "http://127.0.0.1:1", "timeout": time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := schema.NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Open(context.Background())
	if !errors.Is(err, schema.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Open: %v, want ErrUnavailable naming the address", err)
	}
	_, _, err = d.Decode(context.Background(), wire(1, []byte{2}), nil)
	if !errors.Is(err, schema.ErrUnavailable) {
		t.Fatalf("Decode: %v, want ErrUnavailable", err)
	}
	cfgE, err := schema.EncodeSpec.Config(map[string]any{"format": "avro", "subject": "s",
		"registry": map[string]any{"url": "http://127.0.0.1:1", "timeout": time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := schema.NewEncoder(cfgE)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Open(context.Background()); !errors.Is(err, schema.ErrUnavailable) {
		t.Fatalf("Encoder.Open: %v, want ErrUnavailable", err)
	}
	if _, _, err := e.Encode(context.Background(), []byte(`{}`), nil); err == nil {
		t.Fatal("Encode before a successful Open succeeded")
	}
}

func TestRegistryAuth(t *testing.T) {
	ctx := context.Background()
	t.Run("basic", func(t *testing.T) {
		reg := registrytest.New(t, registrytest.WithBasicAuth("u", "p"))
		cfg, _ := schema.DecodeSpec.Config(map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL, "username": "u", "password": "wrong"}})
		d, err := schema.NewDecoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Open(ctx)
		if !errors.Is(err, connector.ErrPermanent) || errors.Is(err, schema.ErrUnavailable) || !strings.Contains(err.Error(), "401") {
			t.Fatalf("Open: %v, want a permanent 401", err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Fatalf("the password leaks into %q", err)
		}
		newDecoder(t, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL, "username": "u", "password": "p"}})
	})
	t.Run("token", func(t *testing.T) {
		reg := registrytest.New(t, registrytest.WithToken("tok"))
		id := reg.Register(t, "s", "AVRO", `"string"`)
		d := newDecoder(t, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL, "token": "tok"}})
		out, _, err := d.Decode(ctx, wire(id, []byte{2, 'x'}), nil)
		if err != nil || string(out) != `"x"` {
			t.Fatalf("Decode = %s, %v", out, err)
		}
		_, err = newEncoderErr(t, map[string]any{"format": "avro", "subject": "s", "registry": map[string]any{"url": reg.URL, "token": "bad"}})
		if !errors.Is(err, connector.ErrPermanent) {
			t.Fatalf("Encoder.Open: %v, want permanent", err)
		}
	})
}

func TestRegistryTLS(t *testing.T) {
	reg := registrytest.NewTLS(t)
	id := reg.Register(t, "s", "AVRO", `"long"`)
	ctx := context.Background()
	d := newDecoder(t, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL, "tls": map[string]any{"ca_file": reg.CAFile(t)}}})
	if out, _, err := d.Decode(ctx, wire(id, []byte{4}), nil); err != nil || string(out) != "2" {
		t.Fatalf("Decode = %s, %v", out, err)
	}
	newDecoder(t, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL, "tls": map[string]any{"insecure_skip_verify": true}}})
	cfg, _ := schema.DecodeSpec.Config(map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL}})
	untrusted, err := schema.NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := untrusted.Open(ctx); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "registry.tls.ca_file") {
		t.Fatalf("Open without the CA: %v, want a certificate error", err)
	}
}

func TestEncoderRegistration(t *testing.T) {
	ctx := context.Background()
	v1 := `{"type":"record","name":"P","fields":[{"name":"price","type":"double"}]}`
	v2 := `{"type":"record","name":"P","fields":[{"name":"price","type":"double"},{"name":"currency","type":"string"}]}`
	reg := registrytest.New(t, registrytest.WithCompatibility(func(subject string, existing []registrytest.Schema, next registrytest.Schema) string {
		if len(existing) > 0 && strings.Contains(next.Text, "currency") && !strings.Contains(next.Text, "default") {
			return "READER_FIELD_MISSING_DEFAULT_VALUE: currency"
		}
		return ""
	}))
	base := map[string]any{"format": "avro", "registry": registryCfg(reg), "subject": "prices-value"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}

	_, err := newEncoderErr(t, with())
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "subject prices-value has no schema") {
		t.Fatalf("latest of a missing subject: %v", err)
	}
	_, err = newEncoderErr(t, with("schema", v1))
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "auto_register") {
		t.Fatalf("lookup of an unregistered schema: %v", err)
	}
	e1 := newEncoder(t, with("schema", v1, "auto_register", true))
	if got := e1.Info(); got.ID != 1 || got.Version != 1 {
		t.Fatalf("registered: %+v", got)
	}
	if got := newEncoder(t, with("schema", v1, "auto_register", true)).Info(); got.ID != 1 {
		t.Fatalf("registering again: %+v, want the same id", got)
	}
	if got := newEncoder(t, with("schema", v1)).Info(); got.ID != 1 || got.Version != 1 {
		t.Fatalf("lookup: %+v", got)
	}
	if got := newEncoder(t, with()).Info(); got.ID != 1 {
		t.Fatalf("latest: %+v", got)
	}

	_, err = newEncoderErr(t, with("schema", v2, "auto_register", true))
	if !errors.Is(err, connector.ErrPermanent) || errors.Is(err, schema.ErrUnavailable) {
		t.Fatalf("incompatible: %v, want permanent", err)
	}
	for _, want := range []string{"subject prices-value", "READER_FIELD_MISSING_DEFAULT_VALUE: currency", "make the change compatible"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("incompatible: %q does not say %q", err, want)
		}
	}

	file := t.TempDir() + "/p.avsc"
	if err := writeFile(file, strings.Replace(v2, `"type":"string"}`, `"type":"string","default":"EUR"}`, 1)); err != nil {
		t.Fatal(err)
	}
	e2 := newEncoder(t, with("schema_file", file, "auto_register", true))
	if got := e2.Info(); got.ID != 2 || got.Version != 2 {
		t.Fatalf("compatible v2: %+v", got)
	}
	out, _, err := e2.Encode(ctx, []byte(`{"price":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	back, info, err := d.Decode(ctx, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, back, `{"price":1,"currency":"EUR"}`)
	if info != (schema.Info{ID: 2, Subject: "prices-value", Version: 2}) {
		t.Fatalf("decoded info %+v", info)
	}
}

func TestDecoderCachesByID(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "prices-value", "AVRO", listingSchema)
	s := avro.MustParse(listingSchema)
	d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []byte
			for i := range 200 {
				p, err := avro.Marshal(s, sampleListing(g*1000+i))
				if err != nil {
					errs <- err
					return
				}
				if dst, _, err = d.Decode(context.Background(), wire(id, p), dst[:0]); err != nil {
					errs <- err
					return
				}
				if i%50 == 0 { // unknown ids are remembered too
					if _, _, err := d.Decode(context.Background(), wire(77, p), nil); err == nil {
						errs <- errors.New("unknown id decoded")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, req := range []string{"GET /schemas/ids/1", "GET /schemas/ids/1/versions", "GET /schemas/ids/77/versions"} {
		if n := reg.Hits(req); n != 1 {
			t.Errorf("%s: %d requests, want 1", req, n)
		}
	}
}

func TestCacheSizeBoundsSchemas(t *testing.T) {
	reg := registrytest.New(t)
	ids := []int{reg.Register(t, "a", "AVRO", `"int"`), reg.Register(t, "b", "AVRO", `"long"`), reg.Register(t, "c", "AVRO", `"string"`)}
	d := newDecoder(t, map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL, "cache_size": 2}})
	for range 3 {
		for _, id := range ids {
			if _, _, err := d.Decode(context.Background(), wire(id, []byte{0}), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := reg.Hits("GET /schemas/ids/1") + reg.Hits("GET /schemas/ids/2") + reg.Hits("GET /schemas/ids/3")
	if n <= 3 {
		t.Fatalf("with room for 2 of 3 schemas cycled through, %d fetches, want more than 3", n)
	}
}

func TestDecodeFormatMismatch(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "listings-value", "PROTOBUF", listingProto)
	d := newDecoder(t, map[string]any{"format": "avro", "registry": registryCfg(reg)})
	_, _, err := d.Decode(context.Background(), wire(id, []byte{0}), nil)
	var re *schema.RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "PROTOBUF schema") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenRefusesANonRegistryURL(t *testing.T) {
	reg := registrytest.New(t)
	cfg, err := schema.DecodeSpec.Config(map[string]any{"format": "avro", "registry": map[string]any{"url": reg.URL + "/not-the-api"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := schema.NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Open(context.Background()); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "not the base of a schema registry API") {
		t.Fatalf("Open: %v, want a permanent error about the URL", err)
	}
}

func TestDecodeWaitingForAFetchEndsWithItsContext(t *testing.T) {
	release := make(chan struct{})
	reg := registrytest.New(t)
	id := reg.Register(t, "s", "AVRO", `"long"`)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			<-release
		}
		reg.ServeHTTP(w, r)
	}))
	defer slow.Close()
	defer close(release)
	d := newDecoder(t, map[string]any{"format": "avro", "registry": map[string]any{"url": slow.URL}})
	first, cancelFirst := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Decode(first, wire(id, []byte{4}), nil)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the first call is fetching
	waiter, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := d.Decode(waiter, wire(id, []byte{4}), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting decode: %v, want its own deadline", err)
	}
	cancelFirst()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first decode: %v, want canceled", err)
	}
}
