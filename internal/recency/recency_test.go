package recency_test

import (
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/bduf/mcpauth/internal/recency"
)

// The use recency exists for: a key used often enough survives a flood of fresh keys that
// fills the cache many times over, while it is read mostly without a move.
func TestShouldKeepAKeyUsedEveryFewInsertsThroughAFloodOfFreshOnes(t *testing.T) {
	const size = 1024
	c, err := lru.New[int, *recency.Uses](size)
	if err != nil {
		t.Fatal(err)
	}
	hot := -1
	c.Add(hot, new(recency.Uses))
	moves := 0
	for i := range 20 * size {
		c.Add(i, new(recency.Uses))
		if i%(size/recency.Every-1) != 0 { // the hot key is used Every times (and a bit) per size inserts
			continue
		}
		u, ok := c.Peek(hot)
		if !ok {
			t.Fatalf("the hot key was evicted after %d fresh keys", i)
		}
		if u.Due() {
			moves++
			c.Get(hot)
		}
	}
	uses := 20 * size / (size/recency.Every - 1)
	if moves == 0 || moves > uses/recency.Every+1 {
		t.Errorf("%d moves for %d uses, want about one in %d", moves, uses, recency.Every)
	}
	if u, ok := c.Peek(0); ok {
		t.Errorf("the first fresh key is still cached (%v): the cache is not bounded", u)
	}
}

func TestShouldBeDueOnceInEveryHits(t *testing.T) {
	var u recency.Uses
	due := 0
	for range 10 * recency.Every {
		if u.Due() {
			due++
		}
	}
	if due != 10 {
		t.Errorf("due %d times in %d hits, want 10", due, 10*recency.Every)
	}
}
