// Package benchratio puts a baseline and the thing measured side by side in one benchmark and
// reports their ratio: machines are noisy, ratios from the same run travel. Benchmarks only.
package benchratio

import (
	"slices"
	"testing"
)

// Samples holds the time per operation of every run of one sub-benchmark (-count repeats each).
type Samples []float64

// Median is the median time per operation, in nanoseconds.
func (s *Samples) Median() float64 {
	v := slices.Clone(*s)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

// Run runs f as a sub-benchmark (with allocation reporting) and collects its time per operation.
// (testing.Benchmark cannot be nested in a running benchmark: it takes the same lock.)
func Run(b *testing.B, name string, f func(b *testing.B)) *Samples {
	s := &Samples{}
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		f(b)
		*s = append(*s, float64(b.Elapsed().Nanoseconds())/float64(b.N))
	})
	return s
}

// Report prints, as a last "ratio" sub-benchmark, each ratio of medians (numerator,
// denominator) under its unit name, beside the figures it comes from.
func Report(b *testing.B, ratios map[string][2]*Samples) {
	b.Run("ratio", func(b *testing.B) {
		for b.Loop() {
		}
		for unit, pair := range ratios {
			b.ReportMetric(pair[0].Median()/pair[1].Median(), unit)
		}
	})
}

// ReportDelta prints, as a last "delta" sub-benchmark, each difference of medians (numerator
// minus denominator, in nanoseconds per operation) under its unit name: the cost one thing
// adds to another.
func ReportDelta(b *testing.B, deltas map[string][2]*Samples) {
	b.Run("delta", func(b *testing.B) {
		for b.Loop() {
		}
		for unit, pair := range deltas {
			b.ReportMetric(pair[0].Median()-pair[1].Median(), unit)
		}
	})
}
