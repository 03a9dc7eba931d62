package checkpoint_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A damaged store file is reported as ErrCorrupt; Recreate sets it aside and starts an empty
// store, and leaves a healthy store as it is.
func TestCorruptStoreIsReportedAndRecreated(t *testing.T) {
	dir := t.TempDir()
	s, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save("p", []connector.Position{{Partition: "a", Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, checkpoint.FileName)
	good, _ := os.ReadFile(path)

	s, err = checkpoint.Recreate(dir) // healthy: kept
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := s.Load("p"); len(pos) != 1 {
		t.Fatalf("Recreate lost a healthy store: %v", pos)
	}
	s.Close()

	for name, bad := range map[string][]byte{
		"truncated": good[:100],
		"garbage":   []byte("this is not a checkpoint store, just some text that is long enough"),
		"zeroed":    make([]byte, len(good)),
	} {
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := checkpoint.Open(dir)
		if !errors.Is(err, checkpoint.ErrCorrupt) {
			t.Fatalf("%s: Open: %v, want ErrCorrupt", name, err)
		}
		s, err := checkpoint.Recreate(dir)
		if err != nil {
			t.Fatalf("%s: Recreate: %v", name, err)
		}
		if pos, err := s.Load("p"); err != nil || len(pos) != 0 {
			t.Fatalf("%s: recreated store holds %v (%v)", name, pos, err)
		}
		s.Close()
		if kept, err := os.ReadFile(path + ".corrupt"); err != nil || string(kept) != string(bad) {
			t.Fatalf("%s: the damaged file was not set aside: %v", name, err)
		}
	}
}
