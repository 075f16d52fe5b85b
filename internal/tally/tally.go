// Package tally counts events and records durations by the value of one attribute in atomics,
// read when metrics are collected: a Counter as an OpenTelemetry observable counter, a Histogram
// through Producer (OpenTelemetry has no asynchronous histogram). On a hot path a synchronous
// instrument (its attribute set looked up and locked on every use) costs more than everything
// else the path records; an atomic add costs almost nothing.
package tally

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Counter counts events by one attribute's value. The usual value has a field of its own; the
// others (few: error codes, reasons) a map entry each, made on their first event.
type Counter struct {
	key      string
	usual    string
	usualSet attribute.Set
	usualN   atomic.Int64
	others   sync.Map // value → *atomic.Int64
}

// New registers the observable counter name on m, counting by the attribute key, whose value is
// usually usual. A failed registration (an invalid name) leaves the counter counting, unread,
// as a failed synchronous instrument would.
func New(m metric.Meter, name, description, key, usual string) *Counter {
	c := &Counter{key: key, usual: usual, usualSet: attribute.NewSet(attribute.String(key, usual))}
	_, _ = m.Int64ObservableCounter(name, metric.WithDescription(description), metric.WithInt64Callback(c.observe))
	return c
}

// Add counts one event with the attribute's value.
func (c *Counter) Add(value string) {
	if value == c.usual {
		c.usualN.Add(1)
		return
	}
	n, _ := c.others.LoadOrStore(value, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (c *Counter) observe(_ context.Context, o metric.Int64Observer) error {
	o.Observe(c.usualN.Load(), metric.WithAttributeSet(c.usualSet))
	c.others.Range(func(k, v any) bool {
		o.Observe(v.(*atomic.Int64).Load(), metric.WithAttributes(attribute.String(c.key, k.(string))))
		return true
	})
	return nil
}
