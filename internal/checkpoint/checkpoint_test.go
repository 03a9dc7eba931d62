package checkpoint_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestSaveLoadAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load("p"); len(got) != 0 {
		t.Fatalf("fresh store has positions: %v", got)
	}
	if err := s.Save("p", []connector.Position{{Partition: "b", Offset: 7}, {Partition: "a", Offset: 3, Cursor: []byte("c1")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("p", []connector.Position{{Partition: "b", Offset: 9}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("other", []connector.Position{{Partition: "x", Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Load("p")
	if err != nil {
		t.Fatal(err)
	}
	want := []connector.Position{{Partition: "a", Offset: 3, Cursor: []byte("c1")}, {Partition: "b", Offset: 9}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %v, want %v", got, want)
	}
	if err := s.Reset("p"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load("p"); len(got) != 0 {
		t.Fatalf("after Reset: %v", got)
	}
	if got, _ := s.Load("other"); len(got) != 1 {
		t.Fatalf("Reset touched another pipeline: %v", got)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = checkpoint.Open(dir)
	if !errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

// A single-partition source names no partition (connector.Position); its position must be
// saved like any other.
func TestSavesTheUnnamedPartition(t *testing.T) {
	s, err := checkpoint.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save("p", []connector.Position{{Offset: 41}, {Partition: "a", Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("p")
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Position{{Offset: 41}, {Partition: "a", Offset: 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %v, want %v", got, want)
	}
}
