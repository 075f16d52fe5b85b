package mcp_test

import (
	"testing"

	"github.com/bduf/mcpauth/internal/mongotest"
)

// The guard's tests use fakes; its benchmarks run the real auth and rbac on the embedded store.
func TestMain(m *testing.M) { mongotest.Main(m) }
