package password

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHasherShouldQueueBoundedlyAndGiveUp(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(Config{Cost: 4, Workers: 1, Queue: 1, Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	release, err := h.Acquire(context.Background()) // the only worker
	if err != nil {
		t.Fatal(err)
	}

	// Queued, and the wait runs out.
	if _, err := h.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("after the wait: %v, want ErrBusy", err)
	}

	// Queued, and the request ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("with the request ended: %v, want context.Canceled", err)
	}

	// The queue is full: refused at once.
	h.waiting <- struct{}{}
	if _, err := h.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("with the queue full: %v, want ErrBusy", err)
	}
	<-h.waiting

	// A queued check gets the worker when it is released.
	h.wait = time.Minute
	got := make(chan error)
	go func() {
		r, err := h.Acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	for len(h.waiting) == 0 { // until it is queued
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("queued check after release: %v", err)
	}
}
