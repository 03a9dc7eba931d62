package outstanding

import (
	"sync"
	"testing"
)

// Wait closes only after the hand-over ended and every operation was answered, whatever the order
// of the answers and the hand-over.
func TestCount(t *testing.T) {
	c := New()
	var wg sync.WaitGroup
	for range 100 {
		c.Add()
		wg.Add(1)
		go func() { defer wg.Done(); c.Done() }()
	}
	wg.Wait() // every answer came before the hand-over ended
	select {
	case <-c.Wait():
		t.Fatal("closed before the hand-over ended")
	default:
	}
	c.Add()
	c.Done() // the hand-over ends with one operation still out
	select {
	case <-c.Wait():
		t.Fatal("closed with an operation not answered")
	default:
	}
	c.Done()
	<-c.Wait()
}
