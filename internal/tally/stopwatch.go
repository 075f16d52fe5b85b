package tally

import "time"

// Stopwatch times a latency on the monotonic clock alone. time.Now reads the wall clock as well
// (on Linux two clock reads of about 25 ns each); a latency needs only the monotonic one, at
// its start and at its end.
type Stopwatch struct{ start time.Duration }

// epoch is the process's monotonic origin: time.Since(epoch) is one monotonic clock read.
var epoch = time.Now()

// Start starts a stopwatch.
func Start() Stopwatch { return Stopwatch{start: time.Since(epoch)} }

// Elapsed is the time since s started.
func (s Stopwatch) Elapsed() time.Duration { return time.Since(epoch) - s.start }
