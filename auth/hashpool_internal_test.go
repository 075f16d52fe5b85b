package auth

import (
	"context"
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
)

func TestHashPoolShouldQueueBoundedlyAndGiveUp(t *testing.T) {
	t.Parallel()
	p := newHashPool(1, 1, 50*time.Millisecond)
	release, err := p.acquire(context.Background()) // the only worker
	if err != nil {
		t.Fatal(err)
	}

	// Queued, and the wait runs out.
	if _, err := p.acquire(context.Background()); apierr.CodeOf(err) != apierr.RateLimited {
		t.Fatalf("after the wait: %v, want RATE_LIMITED", err)
	}

	// Queued, and the request ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.acquire(ctx); apierr.CodeOf(err) != apierr.Internal {
		t.Fatalf("with the request ended: %v, want INTERNAL", err)
	}

	// The queue is full: refused at once.
	p.waiting <- struct{}{}
	if _, err := p.acquire(context.Background()); apierr.CodeOf(err) != apierr.RateLimited {
		t.Fatalf("with the queue full: %v, want RATE_LIMITED", err)
	}
	<-p.waiting

	// A queued login gets the worker when it is released.
	p.wait = time.Minute
	got := make(chan error)
	go func() {
		r, err := p.acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	for len(p.waiting) == 0 { // until it is queued
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("queued login after release: %v", err)
	}
}
