//go:build !race

package main

// raceEnabled says the test binary was built with -race, so the binary under test is too.
const raceEnabled = false
