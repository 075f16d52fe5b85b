//go:build race

package mcp_test

// raceBuild: the race detector's instrumentation makes frames larger (stack_test.go).
const raceBuild = true
