//go:build race

package mcptest

// RaceEnabled says the tests were built with -race, so the binaries under test are too.
const RaceEnabled = true
