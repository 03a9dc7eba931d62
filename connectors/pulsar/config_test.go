package pulsar

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestSourceConfigErrors(t *testing.T) {
	base := map[string]any{"url": "pulsar://localhost:6650", "topics": []any{"events"}, "subscription": "s"}
	for _, tc := range []struct {
		change map[string]any
		field  string
	}{
		{map[string]any{"url": "localhost:6650"}, "url"},
		{map[string]any{"topics": []any{}}, "topics"},
		{map[string]any{"topics": []any{"a/b"}}, "topics[0]"},
		{map[string]any{"topics": []any{"events", " "}}, "topics[1]"},
		{map[string]any{"topics_pattern": "public/default/x.*"}, "topics_pattern"},
		{map[string]any{"topics": []any{}, "topics_pattern": "public/default/(x"}, "topics_pattern"},
		{map[string]any{"topics": []any{}, "topics_pattern": "ftp://public/default/x"}, "topics_pattern"},
		{map[string]any{"subscription": " "}, "subscription"},
		{map[string]any{"receiver_queue_size": 0}, "receiver_queue_size"},
		{map[string]any{"token": "a", "token_file": "/t"}, "token_file"},
		{map[string]any{"tls": map[string]any{"cert_file": "/c"}}, "tls.key_file"},
		{map[string]any{"tls": map[string]any{"cert_file": "/c", "key_file": "/k"}, "token": "a"}, "tls.cert_file"},
		{map[string]any{"operation_timeout": "0s"}, "operation_timeout"},
		{map[string]any{"admin_url": "localhost:8080"}, "admin_url"},
	} {
		t.Run(fmt.Sprint(tc.change), func(t *testing.T) {
			v := map[string]any{}
			for k, x := range base {
				v[k] = x
			}
			for k, x := range tc.change {
				v[k] = x
			}
			cfg, err := sourceSpec.Config(v)
			if err == nil {
				_, err = NewSource(cfg, connector.Env{})
			}
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("got %v; want a ConfigError on %s", err, tc.field)
			}
		})
	}
	for _, typ := range []string{"exclusive", "failover", "shared", "key_shared"} {
		cfg, err := sourceSpec.Config(map[string]any{"url": "pulsar+ssl://h:6651", "topics_pattern": "persistent://t/n/x-.*", "subscription": "s", "subscription_type": typ})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewSource(cfg, connector.Env{}); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
}

func TestSplitTopic(t *testing.T) {
	for in, want := range map[string]string{
		"events":                            "persistent://public/default/events",
		"t/n/events":                        "persistent://t/n/events",
		"persistent://t/n/events":           "persistent://t/n/events",
		"non-persistent://t/n/events":       "non-persistent://t/n/events",
		"persistent://t/n/events-partition": "persistent://t/n/events-partition",
	} {
		got, err := splitTopic(in)
		if err != nil || got.String() != want {
			t.Errorf("splitTopic(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"a/b", "persistent://events", "http://t/n/e", "t//e", "a/b/c/d"} {
		if _, err := splitTopic(in); err == nil {
			t.Errorf("splitTopic(%q): want an error", in)
		}
	}
	for in, want := range map[string]string{
		"persistent://t/n/e-partition-3":  "persistent://t/n/e",
		"persistent://t/n/e-partition-x":  "persistent://t/n/e-partition-x",
		"persistent://t/n/e-partition-":   "persistent://t/n/e-partition-",
		"persistent://t/n/e":              "persistent://t/n/e",
		"persistent://t/n/a-partition-1b": "persistent://t/n/a-partition-1b",
	} {
		if got := base(in); got != want {
			t.Errorf("base(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestCursorIsTheSerializedMessageID(t *testing.T) {
	for _, id := range []pulsar.MessageID{
		pulsar.NewMessageID(9, 0, 0, 0),
		pulsar.NewMessageID(123456789, 987654, -1, -1),
		pulsar.NewMessageID(1, 2, 17, 5),
	} {
		got := appendCursor(nil, id)
		if want := id.Serialize(); string(got) != string(want) {
			t.Fatalf("cursor of %v: %x, want %x", id, got, want)
		}
		k, err := parseCursor(got)
		if err != nil || k != keyOf(id) {
			t.Fatalf("parseCursor: %v, %v; want %v", k, err, keyOf(id))
		}
	}
	if _, err := parseCursor([]byte{0xff, 0xff}); err == nil {
		t.Fatal("parseCursor of garbage: want an error")
	}
	a, b := msgKey{1, 5, -1}, msgKey{1, 5, 0}
	if a.compare(b) >= 0 || b.compare(msgKey{2, 0, -1}) >= 0 || (msgKey{1, 6, -1}).compare(b) <= 0 || b.compare(b) != 0 {
		t.Fatal("msgKey order: want ledger, then entry, then batch index")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err       error
		permanent bool
		says      string
	}{
		{errors.New("TopicNotFound"), true, "does not exist"},
		{&testErr{"server error: AuthenticationError: invalid token"}, true, "refused the credentials"},
		{errors.New("AuthorizationError: not allowed"), true, "not authorized"},
		{errors.Join(errors.New("context deadline exceeded"), errors.New("connection error")), false, "cannot reach the Pulsar cluster at pulsar://h:1"},
		{errors.New("ConsumerBusy: Exclusive consumer is already connected"), false, "another consumer holds it"},
		{errors.New("something else"), false, "something else"},
	} {
		got := classify(tc.err, "doing", "pulsar://h:1", nil)
		if errors.Is(got, connector.ErrPermanent) != tc.permanent || !strings.Contains(got.Error(), tc.says) || strings.Contains(got.Error(), "\n") {
			t.Errorf("classify(%v) = %v; want permanent=%v, saying %q on one line", tc.err, got, tc.permanent, tc.says)
		}
	}
}

func TestClassifyWithConnectionProblems(t *testing.T) {
	timeout := errors.Join(errors.New("context deadline exceeded"), errors.New("connection error"))
	var c connProblems
	log := newClientLogger(nil, &c)
	log.WithError(errors.New("x509: certificate signed by unknown authority")).Warn("Failed to perform initial handshake")
	got := classify(timeout, "doing", "pulsar+ssl://h:1", &c)
	if errors.Is(got, connector.ErrPermanent) || !strings.Contains(got.Error(), "cannot reach") || !strings.Contains(got.Error(), "x509: certificate signed by unknown authority") {
		t.Fatalf("classify = %v; want the TLS failure in a transient error", got)
	}
	log.Warnf("Failed to establish connection with broker: '%s'", "Unable to authenticate")
	got = classify(timeout, "doing", "pulsar://h:1", &c)
	if !errors.Is(got, connector.ErrPermanent) || !strings.Contains(got.Error(), "refused the connection") || !strings.Contains(got.Error(), "Unable to authenticate") {
		t.Fatalf("classify = %v; want a permanent error with the broker's reason", got)
	}
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }
