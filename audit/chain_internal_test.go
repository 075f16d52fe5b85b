package audit

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestShouldHashTheShapesTheDriverDecodesToAsThePlainJSONTheyCameFrom(t *testing.T) {
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	written := Event{ID: "evt_1", Instance: "inst-a", Seq: 1, Time: at, Type: AuthSuccess,
		Details: map[string]any{"m": map[string]any{"a": 1.0}, "l": []any{"x", map[string]any{"b": true}}}}
	want, err := hashEvent(written)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	for _, tc := range []struct {
		name    string
		details map[string]any
	}{
		{"nested documents as bson.D, lists as bson.A",
			map[string]any{"l": bson.A{"x", bson.D{{Key: "b", Value: true}}}, "m": bson.D{{Key: "a", Value: 1.0}}}},
		{"nested documents as bson.M",
			map[string]any{"m": bson.M{"a": 1.0}, "l": []any{"x", bson.M{"b": true}}}},
	} {
		read := written
		read.Details = tc.details
		if got, err := hashEvent(read); err != nil || got != want {
			t.Errorf("%s: hash %s, %v; want %s, the hash it was written with", tc.name, got, err, want)
		}
	}
}

func TestShouldReportAnEventWhoseDetailsCannotBeHashedAsEdited(t *testing.T) {
	e := Event{ID: "evt_1", Instance: "inst-a", Seq: 1, Details: map[string]any{"c": make(chan int)}}
	if _, _, err := (chainHead{}).link(e); err == nil {
		t.Fatal("linked an event whose details JSON cannot carry")
	}
	c := chainChecker{instance: "inst-a", next: chainHead{Seq: 1}}
	if bad := c.check(e); bad == nil || bad.Seq != 1 || bad.Problem != ProblemEdited {
		t.Fatalf("check = %+v, want position 1 edited", bad)
	}
}
